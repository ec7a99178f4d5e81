use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a DAG file, located by line and column (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The DAG file the problem is in.
    pub file: PathBuf,
    /// The 1-based line, so editors can jump to it.
    pub line: usize,
    /// The 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong, in words for whoever wrote the file.
    pub message: String,
}

impl Diagnostic {
    /// Locates byte offset `span.start` of `src`. Columns count characters, not bytes.
    pub fn at(file: &Path, src: &str, span: Range<usize>, message: impl Into<String>) -> Self {
        let offset = span.start.min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Self {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = 2\n";
        let d = Diagnostic::at(Path::new("x.toml"), src, 10..11, "m");
        assert_eq!((d.line, d.column), (2, 4));
        assert_eq!(d.to_string(), "x.toml:2:4: m");
    }
}
