//! `/status` in headless Chromium, read from the DOM as a person (and a
//! screen reader) would: what comes first, in which colour and with which
//! words, what the filters keep, and what the page looks like.

use serde_json::Value;

use super::{Fixture, HOSTILE_CN, SUBJECTS_BY_URGENCY};
use crate::common::*;

/// Each row of the certificate table: its class, cell texts and the
/// colours of its status cell.
const ROWS: &str = "return [...document.querySelectorAll('#certificates tbody tr')].map(tr => {
    const status = getComputedStyle(tr.querySelector('td.status'));
    return { class: tr.className, cells: [...tr.cells].map(td => td.innerText.trim()),
             background: status.backgroundColor, color: status.color };
});";

/// Column indexes of the certificate table.
const STATUS: usize = 0;
const SUBJECT: usize = 3;
const WHERE: usize = 7;
const PROBLEM: usize = 9;

fn rows(b: &Browser) -> Vec<Value> {
    b.script(ROWS).as_array().cloned().unwrap_or_default()
}

fn cell(row: &Value, column: usize) -> &str {
    row["cells"][column].as_str().unwrap_or("")
}

/// Asserts that a cell of `row` starts with `text`.
fn assert_cell(row: &Value, column: usize, text: &str) {
    assert!(
        cell(row, column).starts_with(text),
        "column {column}: {row}"
    );
}

fn column(rows: &[Value], column: usize) -> Vec<&str> {
    rows.iter().map(|r| cell(r, column)).collect()
}

#[test]
fn status_page_in_chromium_shows_what_to_renew_and_restart_first() {
    let f = Fixture::start().ready();
    let b = Browser::start(f.dir.path());
    b.goto(&f.url("/status"));
    let rows = rows(&b);

    // Order: failures, then soonest expiry; the word beside every colour.
    let words: Vec<&str> = column(&rows, STATUS)
        .into_iter()
        .map(|s| s.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        words,
        ["ERROR", "ERROR", "ERROR", "EXPIRED", "CRIT", "WARN", "WARN", "OK", "OK"]
    );
    assert_eq!(cell(&rows[4], STATUS), "CRIT under 7 d");
    assert_eq!(column(&rows[3..], SUBJECT), SUBJECTS_BY_URGENCY);

    // Colours: one per band, the same for every row of a band.
    let colour = |class: &str| -> Vec<(&str, &str)> {
        rows.iter()
            .filter(|r| r["class"].as_str().unwrap().split(' ').any(|c| c == class))
            .map(|r| {
                (
                    r["background"].as_str().unwrap(),
                    r["color"].as_str().unwrap(),
                )
            })
            .collect()
    };
    let bands = [
        ("s-error", "rgb(233, 213, 255)"),
        ("s-expired", "rgb(153, 27, 27)"),
        ("s-crit", "rgb(254, 202, 202)"),
        ("s-warn", "rgb(253, 230, 138)"),
        ("s-ok", "rgb(187, 247, 208)"),
    ];
    for (class, background) in bands {
        let seen = colour(class);
        assert!(!seen.is_empty(), "no {class} row");
        assert!(
            seen.iter().all(|(bg, _)| *bg == background),
            "{class}: {seen:?}"
        );
    }
    assert_eq!(colour("s-expired")[0].1, "rgb(255, 255, 255)");

    // Reasons, with the detail, where the trouble is.
    assert_cell(&rows[0], PROBLEM, "no_certificate_found");
    assert_cell(&rows[1], PROBLEM, "not_found");
    assert_cell(&rows[2], PROBLEM, "refused");
    assert_cell(&rows[2], WHERE, &f.refused.to_string());

    // Restart pending: above the table, and on the row.
    let banner = b.script("return document.querySelector('section.restart-pending').innerText");
    let banner = banner.as_str().unwrap();
    assert!(
        banner.starts_with("Restart pending: 1 server still serves an old certificate"),
        "{banner}"
    );
    assert!(
        banner.contains(&f.stale_target) && banner.contains("deploy/tls.crt"),
        "{banner}"
    );
    assert!(
        rows[6]["class"].as_str().unwrap().contains("restart"),
        "{}",
        rows[6]
    );
    assert_cell(&rows[6], PROBLEM, "restart pending");
    assert!(
        cell(&rows[6], WHERE).ends_with("SNI localhost"),
        "{}",
        rows[6]
    );
    let top = b.script(
        "return [document.querySelector('section.restart-pending').getBoundingClientRect().top,
                 document.querySelector('#certificates').getBoundingClientRect().top]",
    );
    assert!(
        top[0].as_f64() < top[1].as_f64(),
        "the restart box comes first: {top}"
    );

    // A subject that is markup stays text.
    assert_eq!(cell(&rows[7], SUBJECT), HOSTILE_CN);
    let pwned = b.script("return [window.pwned === undefined, document.images.length]");
    assert_eq!(pwned, serde_json::json!([true, 0]));

    assert_accessible(&b);
    screenshot_renders(&b, f.dir.path());
}

/// What a screen reader relies on: a real table with a caption and column
/// headers, cells in every row, labelled controls, landmarks, a language.
fn assert_accessible(b: &Browser) {
    let facts = b.script(
        "const t = document.querySelector('table#certificates');
         return {
           lang: document.documentElement.lang,
           caption: t.caption ? t.caption.innerText : null,
           headers: [...t.tHead.rows[0].cells].map(c => [c.tagName, c.scope, c.innerText]),
           widths: [...t.tBodies[0].rows].map(r => r.cells.length),
           emptyStatus: [...t.querySelectorAll('td.status')].filter(c => !c.innerText.trim()).length,
           unlabelled: [...document.querySelectorAll('select, input:not([type=hidden])')]
             .filter(c => c.labels.length === 0).length,
           h1: document.querySelectorAll('h1').length,
           main: document.querySelectorAll('main').length,
           sourcesHeaders: document.querySelectorAll('table#sources thead th[scope=col]').length,
         };",
    );
    assert_eq!(facts["lang"], "en");
    assert!(
        facts["caption"]
            .as_str()
            .unwrap()
            .starts_with("Certificates, most urgent first: 1–9 of 9"),
        "{facts}"
    );
    let headers: Vec<&str> = facts["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert_eq!(
                (&h[0], &h[1]),
                (&Value::from("TH"), &Value::from("col")),
                "{h}"
            );
            h[2].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        headers.join(", "),
        "Status, Days left, Not after, Subject, Issuer, Serial, Source, Where, Chain, Problem"
    );
    assert!(
        facts["widths"].as_array().unwrap().iter().all(|w| w == 10),
        "{facts}"
    );
    assert_eq!(facts["emptyStatus"], 0, "a status told only by colour");
    assert_eq!(facts["unlabelled"], 0, "a control without a label");
    assert_eq!(
        (facts["h1"].as_u64(), facts["main"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(facts["sourcesHeaders"], 8);
}

/// Saves a screenshot under the test's directory and checks it shows
/// something: the window's size, and far more detail than a blank page.
fn screenshot_renders(b: &Browser, dir: &std::path::Path) {
    let png = b.screenshot();
    let path = dir.join("status.png");
    std::fs::write(&path, &png).unwrap();
    let viewport = b.script("return [innerWidth, innerHeight]");
    let expected = (
        viewport[0].as_u64().unwrap() as u32,
        viewport[1].as_u64().unwrap() as u32,
    );
    assert_eq!(png_size(&png), expected, "{}", path.display());
    assert!(
        expected.0 >= WINDOW.0 - 20 && expected.1 >= WINDOW.1 / 2,
        "{expected:?}"
    );
    b.goto("about:blank");
    let blank = b.screenshot();
    assert_eq!(png_size(&blank), expected);
    assert!(
        png.len() > 5 * blank.len(),
        "the page's screenshot ({} bytes, {}) is hardly more than a blank one ({} bytes)",
        png.len(),
        path.display(),
        blank.len()
    );
}

#[test]
fn status_page_filters_search_and_pages_in_chromium() {
    let f = Fixture::start().ready();
    let b = Browser::start(f.dir.path());
    b.goto(&f.url("/status"));

    // The status filter, through the form.
    b.find("select[name=status] option[value=expired]").click();
    b.find("form[role=search] button[type=submit]").click();
    b.wait_for_url(|u| u.contains("status=expired"));
    assert_eq!(column(&rows(&b), SUBJECT), ["gone.example"]);
    let current = b.script("return document.querySelector('.summary [aria-current]').className");
    assert_eq!(current, "s-expired");

    // Search on top of it: nothing is both; then Reset, and search alone.
    b.find("input[name=q]").type_text("urgent");
    b.find("form[role=search] button[type=submit]").click();
    b.wait_for_url(|u| u.contains("q=urgent"));
    assert!(rows(&b).is_empty());
    let empty = b.script("return document.getElementById('certificates').innerText");
    assert_eq!(empty, "No certificate matches these filters.");
    b.find("form[role=search] a[href=status]").click();
    b.wait_for_url(|u| u.ends_with("/status"));
    assert_eq!(rows(&b).len(), 9);
    let search = b.find("input[name=q]");
    search.clear();
    search.type_text("URGENT");
    b.find("form[role=search] button[type=submit]").click();
    b.wait_for_url(|u| u.contains("q=URGENT"));
    assert_eq!(column(&rows(&b), SUBJECT), ["urgent.example"]);

    // The source filter keeps that source's rows.
    b.goto(&f.url("/status"));
    b.find("select[name=source] option[value=web]").click();
    b.find("form[role=search] button[type=submit]").click();
    b.wait_for_url(|u| u.contains("source=web"));
    let web = rows(&b);
    assert_eq!(column(&web, SUBJECT), ["", "api.example"]);
    assert!(web.iter().all(|r| cell(r, 6).starts_with("web")), "{web:?}");

    // The summary's restart-pending link.
    b.find(".summary a.s-restart_pending").click();
    b.wait_for_url(|u| u.contains("status=restart_pending"));
    let restart = rows(&b);
    assert_eq!(column(&restart, SUBJECT), ["api.example"]);

    // Pages follow the order of the whole list.
    b.goto(&f.url("/status?per_page=4"));
    let mut subjects = Vec::new();
    for page in 1..=3 {
        let here = rows(&b);
        let caption = b.script("return document.querySelector('#certificates caption').innerText");
        let first = (page - 1) * 4 + 1;
        let last = (page * 4).min(9);
        assert!(
            caption
                .as_str()
                .unwrap()
                .ends_with(&format!("{first}–{last} of 9 matching (9 in all)")),
            "{caption}"
        );
        subjects.extend(column(&here, SUBJECT).into_iter().map(str::to_owned));
        if page < 3 {
            b.find("nav.pages a[rel=next]").click();
            b.wait_for_url(|u| u.contains(&format!("page={}", page + 1)));
        }
    }
    assert_eq!(subjects[3..], SUBJECTS_BY_URGENCY);
    assert_eq!(
        b.script("return document.querySelectorAll('nav.pages a[rel=next]').length"),
        0
    );
}
