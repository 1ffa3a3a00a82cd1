//! `${VAR}`, `${VAR:-default}` and `$$` expansion of the YAML text, before parsing.
//!
//! Works line by line so line numbers in later parse errors stay right. Comments are copied
//! verbatim (a `#` at the start of a line or after whitespace, outside quotes), so a commented
//! out `${SECRET}` never needs to be set. A substituted value is escaped for the quoting style
//! it lands in (`"…"` or `'…'`), so a value containing quotes or backslashes cannot change the
//! YAML structure; in plain (unquoted) scalars it is inserted as is.
//!
//! Inside block scalars (`key: |`) there are no comments or quotes: every `$` form expands.

/// A failed expansion, with 1-based line and column in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpandError {
    pub line: usize,
    pub column: usize,
    pub variable: Option<String>,
    pub message: String,
    pub allowed: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Expands `text` using `env` for lookups.
///
/// On failure returns either the first malformed reference alone, or every reference to an
/// unset variable (in text order), so one run reports all variables that need setting.
pub(crate) fn expand(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<ExpandError>> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    // Indentation of the key that opened a block scalar; deeper lines are its content.
    let mut block_parent: Option<usize> = None;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let line_no = index + 1;
        let content = line.trim_start_matches(' ');
        let indent = line.len() - content.len();
        let blank = content.trim().is_empty();
        if let Some(parent) = block_parent {
            if blank || indent > parent {
                expand_line(line, line_no, env, false, &mut out, &mut missing)
                    .map_err(|e| vec![e])?;
                continue;
            }
            block_parent = None;
        }
        let opens_block =
            expand_line(line, line_no, env, true, &mut out, &mut missing).map_err(|e| vec![e])?;
        if opens_block {
            block_parent = Some(indent);
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// Expands one line into `out`. With `yaml` false (block scalar content) quotes and comments
/// mean nothing. Returns whether the line ends with a block scalar indicator (`|`, `>`, …).
/// An unset variable is added to `missing` (and expands to nothing) so the scan goes on; a
/// malformed reference is an error.
fn expand_line(
    line: &str,
    line_no: usize,
    env: &dyn Fn(&str) -> Option<String>,
    yaml: bool,
    out: &mut String,
    missing: &mut Vec<ExpandError>,
) -> Result<bool, ExpandError> {
    let mut quote = Quote::None;
    // Last significant character outside quotes; a quote only opens a scalar after one of
    // these (or at the start), so an apostrophe inside `it's` is not a quote.
    let mut prev: Option<char> = None;
    let mut prev_was_space = true;
    // Text after the last `:` outside quotes, to spot block scalar indicators.
    let mut after_colon = String::new();
    let mut seen_colon = false;
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (byte, c) = chars[i];
        let column = line[..byte].chars().count() + 1;
        match c {
            '#' if yaml && quote == Quote::None && prev_was_space => {
                out.push_str(&line[byte..]);
                return Ok(seen_colon && is_block_indicator(&after_colon));
            }
            '$' => {
                let next = chars.get(i + 1).map(|&(_, n)| n);
                match next {
                    Some('$') => {
                        out.push('$');
                        i += 2;
                    }
                    Some('{') => {
                        let rest = &line[byte + 2..];
                        let Some(end) = rest.find('}') else {
                            return Err(ExpandError {
                                line: line_no,
                                column,
                                variable: None,
                                message: "unterminated `${` (missing `}`)".to_string(),
                                allowed: "${NAME}, ${NAME:-default}, or $$ for a literal $"
                                    .to_string(),
                            });
                        };
                        let inner = &rest[..end];
                        let value = match resolve(inner, line_no, column, env) {
                            Ok(value) => value,
                            Err(e) if e.variable.is_some() => {
                                missing.push(e);
                                String::new()
                            }
                            Err(e) => return Err(e),
                        };
                        match quote {
                            Quote::Double => out.push_str(&escape_double(&value)),
                            Quote::Single => out.push_str(&value.replace('\'', "''")),
                            Quote::None => out.push_str(&value),
                        }
                        after_colon.push('x');
                        let consumed = 2 + inner.chars().count() + 1;
                        i += consumed;
                    }
                    _ => {
                        out.push('$');
                        i += 1;
                    }
                }
                prev = Some('$');
                prev_was_space = false;
                continue;
            }
            _ => {}
        }
        out.push(c);
        if yaml {
            match quote {
                Quote::None => {
                    if (c == '"' || c == '\'')
                        && matches!(prev, None | Some(':' | '-' | '[' | '{' | ',' | '?'))
                    {
                        quote = if c == '"' {
                            Quote::Double
                        } else {
                            Quote::Single
                        };
                    }
                }
                Quote::Double => {
                    if c == '\\' {
                        if let Some(&(_, escaped)) = chars.get(i + 1) {
                            out.push(escaped);
                            i += 1;
                        }
                    } else if c == '"' {
                        quote = Quote::None;
                    }
                }
                Quote::Single => {
                    if c == '\'' {
                        if chars.get(i + 1).map(|&(_, n)| n) == Some('\'') {
                            out.push('\'');
                            i += 1;
                        } else {
                            quote = Quote::None;
                        }
                    }
                }
            }
            if quote == Quote::None && c == ':' {
                seen_colon = true;
                after_colon.clear();
            } else if seen_colon {
                after_colon.push(c);
            }
        }
        if !c.is_whitespace() {
            prev = Some(c);
        }
        prev_was_space = c.is_whitespace();
        i += 1;
    }
    Ok(yaml && seen_colon && is_block_indicator(&after_colon))
}

/// `|`, `>`, optionally with chomping/indent indicators (`|-`, `>+`, `|2`).
fn is_block_indicator(value: &str) -> bool {
    let v = value.trim();
    let mut chars = v.chars();
    matches!(chars.next(), Some('|' | '>'))
        && chars.all(|c| c == '-' || c == '+' || c.is_ascii_digit())
}

fn escape_double(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            _ => s.push(c),
        }
    }
    s
}

/// Resolves the inside of `${…}`: `NAME` or `NAME:-default`.
fn resolve(
    inner: &str,
    line: usize,
    column: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    let (name, default) = match inner.split_once(":-") {
        Some((name, default)) => (name, Some(default)),
        None => (inner, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(ExpandError {
            line,
            column,
            variable: None,
            message: format!("invalid variable reference `${{{inner}}}`"),
            allowed: "${NAME} or ${NAME:-default} where NAME is letters, digits and _ \
                      (not starting with a digit), or $$ for a literal $"
                .to_string(),
        });
    }
    match (env(name), default) {
        (Some(value), Some(default)) if value.is_empty() => Ok(default.to_string()),
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default.to_string()),
        (None, None) => Err(ExpandError {
            line,
            column,
            variable: Some(name.to_string()),
            message: format!("environment variable `{name}` is not set"),
            allowed: format!("set {name}, or give a default with ${{{name}:-default}}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("node-1".into()),
            "EMPTY" => Some(String::new()),
            "QUOTY" => Some(r#"a"b\c"#.into()),
            "APOS" => Some("it's".into()),
            _ => None,
        }
    }

    fn x(text: &str) -> Result<String, ExpandError> {
        expand(text, &env).map_err(|mut all| all.remove(0))
    }

    #[test]
    fn substitutes_and_defaults() {
        assert_eq!(x("name: ${HOST}\n").unwrap(), "name: node-1\n");
        assert_eq!(x("name: \"${HOST}\"").unwrap(), "name: \"node-1\"");
        assert_eq!(x("a: ${NOPE:-dflt}").unwrap(), "a: dflt");
        assert_eq!(x("a: ${EMPTY:-dflt}").unwrap(), "a: dflt");
        assert_eq!(x("a: '${EMPTY}'").unwrap(), "a: ''");
        assert_eq!(x("a: ${HOST:-dflt}").unwrap(), "a: node-1");
        assert_eq!(x("a: ${NOPE:-}").unwrap(), "a: ");
    }

    #[test]
    fn dollar_escapes() {
        assert_eq!(x("a: $$HOST").unwrap(), "a: $HOST");
        assert_eq!(x("a: $${HOST}").unwrap(), "a: ${HOST}");
        assert_eq!(x("a: cost$ 5$").unwrap(), "a: cost$ 5$");
    }

    #[test]
    fn comments_are_not_expanded() {
        assert_eq!(x("# ${NOPE}\n").unwrap(), "# ${NOPE}\n");
        assert_eq!(x("a: b # ${NOPE}\n").unwrap(), "a: b # ${NOPE}\n");
        assert_eq!(x("   # ${NOPE}").unwrap(), "   # ${NOPE}");
        // not comments: inside quotes, or `#` glued to text
        assert_eq!(x("a: \"x # ${HOST}\"").unwrap(), "a: \"x # node-1\"");
        assert_eq!(x("a: 'x # ${HOST}'").unwrap(), "a: 'x # node-1'");
        assert_eq!(x("a: x#${HOST}").unwrap(), "a: x#node-1");
        assert!(x("a: x#${NOPE}").is_err());
        // an apostrophe in a plain scalar does not open a quote
        assert_eq!(x("a: it's # ${NOPE}").unwrap(), "a: it's # ${NOPE}");
    }

    #[test]
    fn escapes_for_quote_context() {
        assert_eq!(x(r#"a: "${QUOTY}""#).unwrap(), r#"a: "a\"b\\c""#);
        assert_eq!(x("a: '${APOS}'").unwrap(), "a: 'it''s'");
        assert_eq!(x("a: ${APOS}").unwrap(), "a: it's");
    }

    #[test]
    fn missing_variable_names_it_and_line() {
        let e = x("a: 1\nb:\n  c: \"${MISSING}\"\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.column, 7);
        assert_eq!(e.variable.as_deref(), Some("MISSING"));
        assert!(e.message.contains("MISSING"));
    }

    #[test]
    fn every_missing_variable_is_reported() {
        let text =
            "a: ${ONE}\n# ${COMMENTED}\nb:\n  c: \"${TWO}\" # ${NOPE}\n  d: ${HOST}-${ONE}\n";
        let all = expand(text, &env).unwrap_err();
        let found: Vec<(usize, usize, Option<&str>)> = all
            .iter()
            .map(|e| (e.line, e.column, e.variable.as_deref()))
            .collect();
        assert_eq!(
            found,
            [
                (1, 4, Some("ONE")),
                (4, 7, Some("TWO")),
                (5, 14, Some("ONE"))
            ]
        );
        // a malformed reference is reported alone, wherever it is
        let all = expand("a: ${ONE}\nb: ${BAD NAME}\n", &env).unwrap_err();
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].line, all[0].variable.as_deref()), (2, None));
    }

    #[test]
    fn malformed_references() {
        assert!(x("a: ${HOST").is_err());
        assert!(x("a: ${1X}").is_err());
        assert!(x("a: ${}").is_err());
        assert!(x("a: ${A B}").is_err());
    }

    #[test]
    fn block_scalars_have_no_comments() {
        let text = "data: |\n  # ${HOST}\n  x: 'it''s'\nnext: # ${NOPE}\n";
        assert_eq!(
            x(text).unwrap(),
            "data: |\n  # node-1\n  x: 'it''s'\nnext: # ${NOPE}\n"
        );
    }

    #[test]
    fn keeps_line_structure() {
        let text = "a: ${HOST}\r\nb: 2\n\nc: 3";
        let out = x(text).unwrap();
        assert_eq!(out.lines().count(), text.lines().count());
    }
}
