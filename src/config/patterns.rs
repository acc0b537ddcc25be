//! Compiled `paths:` and `exclude:` entries of file sources.
//!
//! They are compiled when the configuration is loaded, so a bad glob is a
//! configuration error with its key and line, never a failed pass.

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

/// One entry of `paths:`, compiled.
#[derive(Debug, Clone)]
pub struct FilePattern {
    display: String,
    kind: PatternKind,
}

#[derive(Debug, Clone)]
pub(crate) enum PatternKind {
    /// A file, or a directory whose direct entries are read.
    Literal(PathBuf),
    /// A glob: walk `root` (to `max_depth`, unbounded for `**`), keep matches.
    Glob {
        root: PathBuf,
        matcher: GlobMatcher,
        max_depth: Option<usize>,
        /// `dir/*` and `dir/**` mean "the files in there": directories they
        /// match are walked, not reported as errors.
        skip_dirs: bool,
    },
}

impl PartialEq for FilePattern {
    fn eq(&self, other: &Self) -> bool {
        self.display == other.display
    }
}

impl fmt::Display for FilePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

impl FilePattern {
    /// Compiles `absolute` (the configured `raw` pattern made absolute).
    pub fn new(raw: &str, absolute: &Path) -> Result<FilePattern, String> {
        let display = absolute.to_string_lossy().into_owned();
        if !is_glob(&display) {
            return Ok(FilePattern {
                display,
                kind: PatternKind::Literal(absolute.to_owned()),
            });
        }
        let mut root = PathBuf::new();
        let mut rest = Vec::new();
        for c in absolute.components() {
            let s = c.as_os_str().to_string_lossy();
            if rest.is_empty() && !is_glob(&s) {
                root.push(c);
            } else {
                rest.push(s.into_owned());
            }
        }
        let max_depth = if rest.iter().any(|c| c.contains("**")) {
            None
        } else {
            Some(rest.len())
        };
        let skip_dirs = matches!(rest.last().map(String::as_str), Some("*" | "**"));
        let matcher = GlobBuilder::new(&display)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("invalid glob {raw:?}: {}", e.kind()))?
            .compile_matcher();
        Ok(FilePattern {
            display,
            kind: PatternKind::Glob {
                root,
                matcher,
                max_depth,
                skip_dirs,
            },
        })
    }
}

impl FilePattern {
    /// What the pattern is, for the file source to expand.
    pub(crate) fn kind(&self) -> &PatternKind {
        &self.kind
    }

    /// Directories whose changes can change what this pattern yields, and
    /// whether to watch them recursively. A file's *directory* is watched,
    /// not the file: Kubernetes secret volumes swap a `..data` symlink and
    /// editors and certbot replace files by rename, which a watch on the
    /// old inode would miss.
    pub fn watch_roots(&self) -> Vec<(PathBuf, bool)> {
        match &self.kind {
            PatternKind::Literal(path) => {
                let mut roots = Vec::with_capacity(2);
                if let Some(parent) = path.parent() {
                    roots.push((parent.to_owned(), false));
                }
                if path.is_dir() {
                    roots.push((path.clone(), false));
                }
                roots
            }
            PatternKind::Glob {
                root, max_depth, ..
            } => vec![(root.clone(), max_depth.is_none_or(|d| d > 1))],
        }
    }
}

/// `exclude:` globs, matched against the absolute path of each file.
#[derive(Debug, Clone)]
pub struct ExcludeSet {
    set: GlobSet,
    patterns: Vec<String>,
}

impl ExcludeSet {
    /// Compiles exclude patterns. A pattern that is neither absolute nor
    /// starts with `**` matches at any depth (`*.key` = `**/*.key`), as in
    /// `.gitignore`.
    pub fn new(patterns: &[String]) -> Result<ExcludeSet, String> {
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for p in patterns {
            let full = if p.starts_with('/') || p.starts_with("**") {
                p.clone()
            } else {
                format!("**/{p}")
            };
            let glob = GlobBuilder::new(&full)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("invalid exclude glob {p:?}: {}", e.kind()))?;
            builder.add(glob);
            kept.push(full);
        }
        let set = builder
            .build()
            .map_err(|e| format!("invalid exclude globs: {e}"))?;
        Ok(ExcludeSet {
            set,
            patterns: kept,
        })
    }

    /// The patterns as matched (relative ones prefixed with `**/`).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `path` matches any exclude pattern.
    pub(crate) fn is_excluded(&self, path: &Path) -> bool {
        !self.patterns.is_empty() && self.set.is_match(path)
    }
}
