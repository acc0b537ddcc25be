//! The query string of `/status` and `/api/v1/certificates`: `status`,
//! `source`, `q` (the filters both share) and `page`, `per_page` (the
//! page's). Decoded by hand — percent-escapes, `+` for a space, as HTML
//! forms send them — so that an empty value (a form's "all") simply means
//! "no filter" and unknown parameters are ignored.

use std::borrow::Cow;

use crate::report::{Filter, Which};

/// Rows per page unless asked otherwise: a page of 10 000 certificates
/// would be megabytes; 200 rows are about 150 KB.
pub(super) const DEFAULT_PER_PAGE: usize = 200;
/// The most rows a page may hold (every certificate of a large install).
pub(super) const MAX_PER_PAGE: usize = 10_000;
/// The highest page number accepted (a page past the end shows the last).
const MAX_PAGE: usize = 1_000_000;

/// What the query string asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Params {
    /// The filters.
    pub(super) filter: Filter,
    /// The page, from 1.
    pub(super) page: usize,
    /// Rows per page.
    pub(super) per_page: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            filter: Filter::default(),
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// A query parameter with a value it cannot have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum QueryError {
    /// `status` is not a known value.
    #[error(transparent)]
    Status(#[from] crate::report::UnknownStatus),
    /// `page` or `per_page` is not a number in its range.
    #[error("{key}: {value:?} is not a whole number from 1 to {max}")]
    Number {
        /// The parameter.
        key: &'static str,
        /// What it said.
        value: String,
        /// Its upper bound.
        max: usize,
    },
}

/// Parses a query string (without the `?`).
pub(super) fn parse(query: Option<&str>) -> Result<Params, QueryError> {
    let mut params = Params::default();
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value);
        let value = value.trim();
        let text = (!value.is_empty()).then(|| value.to_owned());
        match decode(key).as_ref() {
            "status" => params.filter.which = text.map(|v| v.parse::<Which>()).transpose()?,
            "source" => params.filter.source = text,
            "q" => params.filter.search = text,
            "page" => params.page = number("page", value, MAX_PAGE)?.unwrap_or(1),
            "per_page" => {
                params.per_page =
                    number("per_page", value, MAX_PER_PAGE)?.unwrap_or(DEFAULT_PER_PAGE);
            }
            _ => {}
        }
    }
    Ok(params)
}

fn number(key: &'static str, value: &str, max: usize) -> Result<Option<usize>, QueryError> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(QueryError::Number {
            key,
            value: value.to_owned(),
            max,
        }),
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a
/// byte; a `%` not followed by two hex digits stays as it is, and bytes
/// that are not UTF-8 become U+FFFD.
fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|&c| char::from(c).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: at most 255.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Status;

    #[test]
    fn filters_and_pages_are_read_and_empty_values_mean_all() {
        assert_eq!(parse(None), Ok(Params::default()));
        assert_eq!(
            parse(Some("status=&source=&q=&page=")),
            Ok(Params::default())
        );
        let p = parse(Some(
            "status=crit&source=my+files&q=%3Cscript%3E&page=3&per_page=50&x=1",
        ))
        .unwrap();
        assert_eq!(p.filter.which, Some(Which::Status(Status::Crit)));
        assert_eq!(p.filter.source.as_deref(), Some("my files"));
        assert_eq!(p.filter.search.as_deref(), Some("<script>"));
        assert_eq!((p.page, p.per_page), (3, 50));
        let p = parse(Some("status=restart_pending")).unwrap();
        assert_eq!(p.filter.which, Some(Which::RestartPending));
    }

    #[test]
    fn bad_values_are_refused_with_the_parameter_named() {
        let e = |q: &str| parse(Some(q)).unwrap_err().to_string();
        assert!(e("status=soon").starts_with("unknown status \"soon\""));
        assert_eq!(
            e("per_page=0"),
            "per_page: \"0\" is not a whole number from 1 to 10000"
        );
        assert!(e("per_page=10001").starts_with("per_page:"));
        assert_eq!(
            e("page=-1"),
            "page: \"-1\" is not a whole number from 1 to 1000000"
        );
    }

    #[test]
    fn decoding_keeps_what_is_not_an_escape() {
        assert_eq!(decode("a%2Fb+c"), "a/b c");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%C3%A9"), "é");
        assert_eq!(decode("%FF"), "\u{FFFD}");
    }
}
