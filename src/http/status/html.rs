//! The status page's markup. Accessible by construction: one real
//! `<table>` with a caption and column headers, every colour paired with
//! the word it stands for, filters as a plain `GET` form with labels.
//! Every text from outside goes through [`Html`] or [`Query`].

use std::fmt::{self, Display, Formatter};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::escape::{Html, Query};
use crate::http::query::{Params, DEFAULT_PER_PAGE};
use crate::report::{Restart, Row, SourceRow, Status, Summary, Thresholds, Which};

/// The one stylesheet, inline: the page loads nothing else.
pub(super) const STYLE: &str = include_str!("style.css");

/// One rendered page: a slice of the filtered rows and what surrounds it.
pub(super) struct Page<'a> {
    pub(super) params: &'a Params,
    pub(super) thresholds: Thresholds,
    pub(super) now: SystemTime,
    /// Counts over every row, whatever the filters.
    pub(super) summary: Summary,
    /// Every restart-pending row, whatever the filters.
    pub(super) restart: Vec<&'a Row<'a>>,
    /// The rows of this page.
    pub(super) shown: &'a [&'a Row<'a>],
    /// Index of the first shown row among the matching ones.
    pub(super) first: usize,
    /// How many rows the filters keep.
    pub(super) matched: usize,
    pub(super) page: usize,
    pub(super) pages: usize,
    pub(super) sources: &'a [SourceRow],
}

impl Display for Page<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        let count = |w| s.count(w);
        write!(
            f,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"icon\" href=\"data:,\">\
             <title>certinel status: {} failing, {} expired, {} restart pending, {} expiring soon</title>\
             <style>{STYLE}</style></head>\n<body>\n<header><h1>certinel status</h1>\
             <p>{} certificates and failures, as of <time datetime=\"{now}\">{now}</time> \
             · certinel {} · <a href=\".\">home</a> · \
             <a href=\"api/v1/certificates\">certificates as JSON</a> · \
             <a href=\"api/v1/sources\">sources as JSON</a> · <a href=\"metrics\">metrics</a></p>\
             </header>\n<main>\n",
            count(Which::Status(Status::Error)),
            count(Which::Status(Status::Expired)),
            count(Which::RestartPending),
            count(Which::Status(Status::Crit)) + count(Which::Status(Status::Warn)),
            s.total,
            env!("CARGO_PKG_VERSION"),
            now = rfc3339(self.now),
        )?;
        self.summary_links(f)?;
        self.restart_box(f)?;
        self.form(f)?;
        self.table(f)?;
        self.pager(f)?;
        sources_table(f, self.sources, self.now)?;
        f.write_str("</main>\n</body></html>\n")
    }
}

impl Page<'_> {
    /// What a filter value is called on the page.
    fn name(&self, which: Which) -> String {
        match which {
            Which::Status(Status::Error) => "Failing".to_owned(),
            Which::Status(Status::Expired) => "Expired".to_owned(),
            Which::RestartPending => "Restart pending".to_owned(),
            Which::Status(Status::Crit) => format!("Under {} days", days(self.thresholds.crit)),
            Which::Status(Status::Warn) => format!("Under {} days", days(self.thresholds.warn)),
            Which::Status(Status::Ok) => "OK".to_owned(),
        }
    }

    /// The counts per band, each a link to its filter.
    fn summary_links(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("<nav aria-label=\"Summary\"><ul class=\"summary\">")?;
        let current = |on: bool| if on { " aria-current=\"true\"" } else { "" };
        for w in Which::ALL {
            write!(
                f,
                "<li><a class=\"s-{0}\" href=\"?status={0}\"{1}>{2}<strong>{3}</strong></a></li>",
                w.as_str(),
                current(self.params.filter.which == Some(w)),
                self.name(w),
                self.summary.count(w),
            )?;
        }
        writeln!(
            f,
            "<li><a class=\"s-all\" href=\"status\"{}>All<strong>{}</strong></a></li></ul></nav>",
            current(self.params.filter.is_empty()),
            self.summary.total,
        )
    }

    /// Restart pending first of all: the one problem no expiry date shows.
    fn restart_box(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.restart.is_empty() {
            return Ok(());
        }
        let n = self.restart.len();
        write!(
            f,
            "<section class=\"restart-pending\" aria-labelledby=\"restart-h\">\
             <h2 id=\"restart-h\">Restart pending: {n} {} still {} an old certificate</h2>\
             <p>The certificate file holds a newer certificate than the server presents: \
             restart these services to load it.</p><ul>",
            if n == 1 { "server" } else { "servers" },
            if n == 1 { "serves" } else { "serve" },
        )?;
        for r in &self.restart {
            write!(
                f,
                "<li><strong>{}</strong> ({}) at <code>{}</code>: serves serial {}",
                Html(r.target),
                Html(r.source_name),
                Html(r.address),
                Html(r.serial_number),
            )?;
            if let Some(d) = r.days_left {
                write!(f, " ({d:.1} days left)")?;
            }
            if let Some(file) = &r.expect_file {
                write!(f, "; newer in <code>{}</code>", Html(file))?;
            }
            f.write_str("</li>")?;
        }
        f.write_str("</ul></section>\n")
    }

    fn form(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let filter = &self.params.filter;
        let selected = |on: bool| if on { " selected" } else { "" };
        f.write_str(
            "<form method=\"get\" action=\"status\" role=\"search\" aria-label=\"Filter certificates\">\
             <label>Status <select name=\"status\"><option value=\"\">all</option>",
        )?;
        for w in Which::ALL {
            write!(
                f,
                "<option value=\"{}\"{}>{}</option>",
                w.as_str(),
                selected(filter.which == Some(w)),
                self.name(w)
            )?;
        }
        f.write_str("</select></label><label>Source <select name=\"source\"><option value=\"\">all</option>")?;
        for s in self.sources {
            write!(
                f,
                "<option value=\"{0}\"{1}>{0} ({2})</option>",
                Html(&s.source_name),
                selected(filter.source.as_deref() == Some(s.source_name.as_str())),
                s.source_kind,
            )?;
        }
        write!(
            f,
            "</select></label><label>Search <input type=\"search\" name=\"q\" value=\"{}\" \
             placeholder=\"name, serial, file, target, reason…\"></label>",
            Html(filter.search.as_deref().unwrap_or("")),
        )?;
        if self.params.per_page != DEFAULT_PER_PAGE {
            write!(
                f,
                "<input type=\"hidden\" name=\"per_page\" value=\"{}\">",
                self.params.per_page
            )?;
        }
        f.write_str("<button type=\"submit\">Apply</button><a href=\"status\">Reset</a></form>\n")
    }

    fn table(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.summary.total == 0 {
            // A fresh start, or sources that found nothing: say which.
            return f.write_str(
                "<p id=\"certificates\">No certificates or failures yet: \
                 see below what each source has done so far.</p>\n",
            );
        }
        if self.matched == 0 {
            return f
                .write_str("<p id=\"certificates\">No certificate matches these filters.</p>\n");
        }
        write!(
            f,
            "<table id=\"certificates\"><caption>Certificates, most urgent first: \
             {}–{} of {} matching ({} in all)</caption>\n<thead><tr>",
            self.first + 1,
            self.first + self.shown.len(),
            self.matched,
            self.summary.total,
        )?;
        head(
            f,
            &[
                "Status",
                "Days left",
                "Not after",
                "Subject",
                "Issuer",
                "Serial",
                "Source",
                "Where",
                "Chain",
                "Problem",
            ],
        )?;
        for r in self.shown {
            self.row(f, r)?;
        }
        f.write_str("</tbody></table>\n")
    }

    fn row(&self, f: &mut Formatter<'_>, r: &Row<'_>) -> fmt::Result {
        let band = match r.status {
            Status::Crit => format!(
                " <span class=\"band\">under {} d</span>",
                days(self.thresholds.crit)
            ),
            Status::Warn => format!(
                " <span class=\"band\">under {} d</span>",
                days(self.thresholds.warn)
            ),
            _ => String::new(),
        };
        write!(
            f,
            "<tr class=\"s-{}{}\"><td class=\"status\">{}{band}</td><td class=\"days\">",
            r.status.as_str(),
            if r.restart_pending() { " restart" } else { "" },
            r.status.label(),
        )?;
        if let Some(d) = r.days_left {
            write!(f, "{d:.1}")?;
        }
        f.write_str("</td><td class=\"date\">")?;
        if let Some(t) = r.not_after {
            let full = rfc3339(UNIX_EPOCH + Duration::from_secs(t.max(0).unsigned_abs()));
            write!(
                f,
                "<time datetime=\"{full}\">{}</time>",
                full.get(..10).unwrap_or(&full)
            )?;
        }
        write!(
            f,
            "</td><td class=\"subject\">{}</td><td>{}</td><td class=\"serial\">{}</td>\
             <td>{}<span class=\"kind\">{}</span></td><td>",
            Html(r.subject_cn),
            Html(r.issuer_cn),
            Html(r.serial_number),
            Html(r.source_name),
            r.source_kind,
        )?;
        if r.source_kind == "file" {
            write!(f, "<code>{}</code>", Html(&r.filepath))?;
        } else {
            write!(f, "{}", Html(r.target))?;
            if !r.address.is_empty() {
                write!(f, " → <code>{}</code>", Html(r.address))?;
            }
            if !r.server_name.is_empty() {
                write!(f, "<span class=\"sni\">SNI {}</span>", Html(r.server_name))?;
            }
        }
        f.write_str("</td><td>")?;
        if let Some(i) = r.chain_index {
            write!(f, "{i}")?;
        }
        f.write_str("</td><td class=\"problem\">")?;
        if let Some(reason) = r.reason {
            write!(f, "<strong>{reason}</strong>")?;
            if let Some(detail) = &r.detail {
                write!(f, "<span class=\"detail\">{}</span>", Html(detail))?;
            }
        }
        match r.restart {
            Some(Restart::RestartPending) => write!(
                f,
                "<strong>restart pending</strong><span class=\"detail\">{} holds a newer certificate</span>",
                Html(r.expect_file.as_deref().unwrap_or("its file")),
            )?,
            Some(Restart::FileBehind) => f.write_str(
                "<span class=\"detail\">its file holds an older certificate (not synced yet?)</span>",
            )?,
            Some(Restart::Current) | None => {}
        }
        f.write_str("</td></tr>\n")
    }

    fn pager(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.pages <= 1 {
            return Ok(());
        }
        f.write_str("<nav class=\"pages\" aria-label=\"Pages\">")?;
        if self.page > 1 {
            write!(
                f,
                "<a rel=\"prev\" href=\"{}\">← Previous</a>",
                self.link(self.page - 1)
            )?;
        }
        write!(f, "<span>Page {} of {}</span>", self.page, self.pages)?;
        if self.page < self.pages {
            write!(
                f,
                "<a rel=\"next\" href=\"{}\">Next →</a>",
                self.link(self.page + 1)
            )?;
        }
        f.write_str("</nav>\n")
    }

    /// This page's filters, on another page.
    fn link(&self, page: usize) -> String {
        let filter = &self.params.filter;
        let mut out = String::from("?");
        for (key, value) in [
            ("status", filter.which.map(Which::as_str)),
            ("source", filter.source.as_deref()),
            ("q", filter.search.as_deref()),
        ] {
            if let Some(v) = value {
                out.push_str(&format!("{key}={}&amp;", Query(v)));
            }
        }
        if self.params.per_page != DEFAULT_PER_PAGE {
            out.push_str(&format!("per_page={}&amp;", self.params.per_page));
        }
        out.push_str(&format!("page={page}"));
        out
    }
}

fn sources_table(f: &mut Formatter<'_>, sources: &[SourceRow], now: SystemTime) -> fmt::Result {
    f.write_str(
        "<h2 id=\"sources-h\">Sources</h2><table id=\"sources\" aria-labelledby=\"sources-h\"><thead><tr>",
    )?;
    head(
        f,
        &[
            "Source",
            "Kind",
            "Up",
            "Last pass",
            "Took",
            "Certificates",
            "Failing",
            "Errors since start",
        ],
    )?;
    let now = crate::clock::unix_secs(now);
    for s in sources {
        let (up_class, up) = if s.up {
            ("up-yes", "up")
        } else {
            ("up-no", "DOWN")
        };
        write!(
            f,
            "<tr><td>{}</td><td>{}</td><td class=\"{up_class}\">{up}</td><td>{}</td><td>",
            Html(&s.source_name),
            s.source_kind,
            s.last_pass
                .map_or_else(|| "never".to_owned(), |t| ago(now.saturating_sub(t))),
        )?;
        if let Some(d) = s.last_pass_duration_seconds {
            write!(f, "{d:.3} s")?;
        }
        let places = if s.source_kind == "file" {
            "files"
        } else {
            "addresses"
        };
        write!(
            f,
            "</td><td>{}</td><td>{} of {} {places}",
            s.certificates, s.failing, s.places
        )?;
        if let (Some(targets), Some(probed)) = (s.targets, s.targets_probed) {
            if probed < targets {
                write!(
                    f,
                    "<span class=\"detail\">{probed} of {targets} targets probed so far</span>"
                )?;
            }
        }
        f.write_str("</td><td>")?;
        let errors: Vec<String> = s
            .errors_total
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        writeln!(f, "{}</td></tr>", errors.join(", "))?;
    }
    f.write_str("</tbody></table>\n")
}

/// A table's column headers (for screen readers: `th` with a scope), and
/// the start of its body.
fn head(f: &mut Formatter<'_>, columns: &[&str]) -> fmt::Result {
    for c in columns {
        write!(f, "<th scope=\"col\">{c}</th>")?;
    }
    f.write_str("</tr></thead>\n<tbody>\n")
}

/// A threshold in days, as people write it: `7`, or `1.5`.
fn days(d: Duration) -> String {
    let days = d.as_secs_f64() / 86_400.0;
    if days.fract() == 0.0 {
        format!("{days:.0}")
    } else {
        format!("{days:.1}")
    }
}

/// How long ago, in the largest unit that fits.
fn ago(secs: i64) -> String {
    match secs {
        s if s < 2 => "just now".to_owned(),
        s if s < 120 => format!("{s} s ago"),
        s if s < 7_200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3_600),
        s => format!("{} days ago", s / 86_400),
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(days(Duration::from_secs(7 * 86_400)), "7");
        assert_eq!(days(Duration::from_secs(36 * 3_600)), "1.5");
        assert_eq!(ago(0), "just now");
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(600), "10 min ago");
        assert_eq!(ago(3 * 86_400), "3 days ago");
    }
}
