//! Where a YAML syntax error really starts.
//!
//! The parser reports the place it gave up. For a quoted string or a flow collection (`[`,
//! `{`) that is never closed, that is a later line, or the end of the file: a missing quote
//! on line 3 is reported at line 4 ("invalid indentation in multiline quoted scalar") or at
//! the last line. Only when the parser has already failed, this scan walks the text up to
//! the reported position, tracking quotes, flow brackets, comments and block scalars as
//! YAML does, and finds the construct still open there.

/// A construct still open at the parser's error position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unclosed {
    /// 1-based line and column of the opening character.
    pub line: usize,
    pub column: usize,
    /// `"`, `'`, `[` or `{`.
    pub opener: char,
}

impl Unclosed {
    pub(crate) fn what(&self) -> &'static str {
        match self.opener {
            '"' => "double-quoted string",
            '\'' => "single-quoted string",
            '[' => "flow list `[`",
            _ => "flow mapping `{`",
        }
    }

    pub(crate) fn closer(&self) -> char {
        match self.opener {
            '[' => ']',
            '{' => '}',
            q => q,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    Double,
    Single,
}

/// The quote or flow collection that is open at `(line, column)` (1-based) and was opened on
/// an earlier line, when the error is plausibly caused by it: the error is at or past the
/// end of the text, on a blank line, or on a line indented no deeper than the opening line
/// (the text went back to block structure, so the construct was meant to end).
pub(crate) fn unclosed_at(text: &str, line: usize, column: usize) -> Option<Unclosed> {
    let lines: Vec<&str> = text.lines().collect();
    let mut quote: Option<(Quote, Unclosed)> = None;
    let mut flows: Vec<Unclosed> = Vec::new();
    let mut block_parent: Option<usize> = None;
    let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();

    for (index, raw) in lines.iter().enumerate() {
        let line_no = index + 1;
        if line_no > line {
            break;
        }
        let indent = indent_of(raw);
        let blank = raw.trim().is_empty();
        if quote.is_none()
            && flows.is_empty()
            && let Some(parent) = block_parent
        {
            if blank || indent > parent {
                continue;
            }
            block_parent = None;
        }
        let chars: Vec<char> = raw.chars().collect();
        let stop = if line_no == line {
            column.saturating_sub(1).min(chars.len())
        } else {
            chars.len()
        };
        let mut prev: Option<char> = None;
        let mut prev_space = true;
        let mut after_colon: Option<String> = None;
        let mut i = 0;
        while i < stop {
            let c = chars[i];
            if let Some((kind, _)) = &quote {
                match (kind, c) {
                    (Quote::Double, '\\') => i += 1,
                    (Quote::Double, '"') => quote = None,
                    (Quote::Single, '\'') if chars.get(i + 1) == Some(&'\'') => i += 1,
                    (Quote::Single, '\'') => quote = None,
                    _ => {}
                }
                i += 1;
                prev = Some(c);
                prev_space = false;
                continue;
            }
            let at_scalar_start = matches!(prev, None | Some(':' | '-' | '[' | '{' | ',' | '?'));
            let here = |opener| Unclosed {
                line: line_no,
                column: i + 1,
                opener,
            };
            match c {
                '#' if prev_space => break,
                '"' if at_scalar_start => quote = Some((Quote::Double, here('"'))),
                '\'' if at_scalar_start => quote = Some((Quote::Single, here('\''))),
                '[' | '{' if at_scalar_start => flows.push(here(c)),
                ']' | '}' if !flows.is_empty() => {
                    flows.pop();
                }
                ':' if flows.is_empty() => after_colon = Some(String::new()),
                _ => {
                    if let Some(rest) = &mut after_colon {
                        rest.push(c);
                    }
                }
            }
            if !c.is_whitespace() {
                prev = Some(c);
            }
            prev_space = c.is_whitespace();
            i += 1;
        }
        if quote.is_none()
            && flows.is_empty()
            && after_colon.is_some_and(|rest| {
                let rest = rest.trim();
                rest.starts_with(['|', '>'])
                    && rest[1..]
                        .chars()
                        .all(|c| c == '-' || c == '+' || c.is_ascii_digit())
            })
        {
            block_parent = Some(indent);
        }
    }

    let open = quote.map(|(_, u)| u).or_else(|| flows.pop())?;
    if open.line >= line {
        return None;
    }
    let past_end = line > lines.len();
    let error_line = lines.get(line - 1).copied().unwrap_or("");
    let plausible = past_end
        || error_line.trim().is_empty()
        || indent_of(error_line) <= indent_of(lines[open.line - 1]);
    plausible.then_some(open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, line: usize, column: usize) -> Option<(usize, usize, char)> {
        unclosed_at(text, line, column).map(|u| (u.line, u.column, u.opener))
    }

    #[test]
    fn finds_the_unclosed_quote() {
        let text = "a:\n  b: 1\n  c: \"unterminated\n  d: 2\ne:\n  f: 3\n";
        assert_eq!(at(text, 4, 3), Some((3, 6, '"')));
        let text = "a:\n  c: 'it''s\n  d: 2\n";
        assert_eq!(at(text, 3, 3), Some((2, 6, '\'')));
        // deeper lines swallowed into the string: the parser stops at the end
        let text = "a:\n  c: \"x\n    d: 2\n    e: 3\n";
        assert_eq!(at(text, 5, 1), Some((2, 6, '"')));
    }

    #[test]
    fn finds_the_unclosed_flow() {
        let text = "a:\n  b: [1, 2\n  d: 2\n";
        assert_eq!(at(text, 3, 4), Some((2, 6, '[')));
        let text = "a:\n  b: {x: [1], y: 2\n  d: 2\n";
        assert_eq!(at(text, 3, 4), Some((2, 6, '{')));
    }

    #[test]
    fn ignores_what_is_not_a_quote_or_is_closed() {
        // apostrophes inside plain scalars, quotes in comments and block scalars
        let text = "a: it's\nb: x # \"no\nc: |\n  \"no\n  [no\nd: 1\n  e: 2\n";
        assert_eq!(at(text, 7, 3), None);
        // escaped quotes do not close; doubled single quotes do not close
        let text = "a: \"x\\\" y\"\nb: 'it''s'\nc: [1, \"]\"]\nd\n";
        assert_eq!(at(text, 4, 1), None);
        // a legitimate multi-line flow with an error inside it, indented deeper
        let text = "a: [1,\n    2 3: x]\n";
        assert_eq!(at(text, 2, 9), None);
        // the error is on the opening line itself: the parser's position is right
        let text = "a: \"x\" y\n";
        assert_eq!(at(text, 1, 8), None);
        // a URL with brackets in a plain scalar is not a flow
        let text = "a: http://[::1]:4317\nb: c: d\n";
        assert_eq!(at(text, 2, 5), None);
    }
}
