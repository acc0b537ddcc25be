//! Where each key of the configuration file is: key path → line.
//!
//! serde sees values, not positions, so checks made after parsing would
//! otherwise name a key but not its line. One pass over the YAML events
//! (block and flow style alike) records the line of every key and list
//! item under the path that errors use (`files[0].interval`,
//! `endpoints[1].targets[2]`). The same pass bounds nesting: a file nested
//! deeper than any configuration needs is refused before the deserialiser,
//! whose time grows with the square of the depth, ever sees it.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

/// The deepest nesting a configuration file may have. The real structure
/// is four levels deep (`endpoints[0].targets[0].target`); the margin is
/// for YAML written in odd ways.
pub(crate) const MAX_DEPTH: usize = 32;

/// Lines by key path.
#[derive(Debug, Default)]
pub(crate) struct Locator {
    lines: HashMap<String, usize>,
}

/// The file nests deeper than [`MAX_DEPTH`].
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("nested more than {MAX_DEPTH} levels deep at line {line}")]
pub(crate) struct TooDeep {
    /// Where the limit was crossed.
    pub(crate) line: usize,
}

enum Frame {
    /// A mapping; `key` is set between a key and its value.
    Map { path: String, key: Option<String> },
    /// A sequence; `next` is the index of the next item.
    Seq { path: String, next: usize },
}

impl Locator {
    /// Indexes `text`. A YAML error is not reported here: the deserialiser
    /// reports it, with its own position, and the index then simply lacks
    /// the lines after it.
    pub(crate) fn index(text: &str) -> Result<Locator, TooDeep> {
        let mut locator = Locator::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut parser = Parser::new_from_str(text);
        while let Some(event) = parser.next_event() {
            let (event, span) = match event {
                Ok(event) => event,
                // The parser's own nesting limit (it counts while scanning,
                // before any event is out): the same verdict as ours.
                Err(e) if e.info().contains("recursion limit") => {
                    return Err(TooDeep {
                        line: e.marker().line(),
                    })
                }
                Err(_) => break,
            };
            let line = span.start.line();
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(Frame::Map {
                        key: key @ None,
                        path,
                    }) = stack.last_mut()
                    {
                        // A key: its line is the line of the entry.
                        let entry = join(path, &value);
                        locator.lines.entry(entry).or_insert(line);
                        *key = Some(value.into_owned());
                    } else {
                        locator.node(&mut stack, line);
                    }
                }
                Event::Alias(_) => {
                    locator.node(&mut stack, line);
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let path = locator.node(&mut stack, line);
                    if stack.len() >= MAX_DEPTH {
                        return Err(TooDeep { line });
                    }
                    stack.push(match event {
                        Event::MappingStart(..) => Frame::Map { path, key: None },
                        _ => Frame::Seq { path, next: 0 },
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                _ => {}
            }
        }
        Ok(locator)
    }

    /// Records a value node and returns its path.
    fn node(&mut self, stack: &mut [Frame], line: usize) -> String {
        match stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key }) => match key.take() {
                Some(key) => join(path, &key),
                // A collection as a mapping key: YAML allows it, the
                // configuration never has one.
                None => format!("{path}.?"),
            },
            Some(Frame::Seq { path, next }) => {
                let item = format!("{path}[{next}]");
                *next += 1;
                self.lines.entry(item.clone()).or_insert(line);
                item
            }
        }
    }

    /// The line of `path`, or of its nearest ancestor that has one (a
    /// missing key is reported where its parent is).
    pub(crate) fn line(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(line) = self.lines.get(path) {
                return Some(*line);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_and_flow_style_keys_have_lines() {
        let text = "global:\n  interval: 1m\nfiles: [{name: x, paths: [/a, /b], interval: 5 parsecs}]\nendpoints:\n  - name: e\n    targets:\n      - a:1\n      - { target: \"b:2\", server_name: x }\n";
        let l = Locator::index(text).unwrap();
        assert_eq!(l.line("global.interval"), Some(2));
        assert_eq!(l.line("files[0].interval"), Some(3));
        assert_eq!(l.line("files[0].paths[1]"), Some(3));
        assert_eq!(l.line("endpoints[0].name"), Some(5));
        assert_eq!(l.line("endpoints[0].targets[0]"), Some(7));
        assert_eq!(l.line("endpoints[0].targets[1].server_name"), Some(8));
        // Missing keys fall back to their parent.
        assert_eq!(l.line("endpoints[0].client_key"), Some(5));
        assert_eq!(l.line("nowhere"), None);
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = "[".repeat(50_000);
        assert_eq!(Locator::index(&deep).unwrap_err(), TooDeep { line: 1 });
        let block = (0..40)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect::<String>();
        assert!(Locator::index(&block).is_err());
    }
}
