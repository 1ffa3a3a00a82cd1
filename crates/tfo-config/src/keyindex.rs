//! A small key-path → line index built by scanning indentation.
//!
//! The parser reports locations for parse errors itself; this index serves the checks that run
//! after parsing (`batch_size >= 1`, …) and expansion errors, so they can still name the line
//! and key. It understands block mappings, which is all a config file uses; keys inside flow
//! collections (`{a: 1}`) and sequences of mappings are not indexed.

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    path: String,
    line: usize,
    column: usize,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct KeyIndex {
    entries: Vec<Entry>,
}

impl KeyIndex {
    pub(crate) fn build(text: &str) -> Self {
        let mut entries = Vec::new();
        let mut stack: Vec<(usize, String)> = Vec::new();
        let mut block_parent: Option<usize> = None;
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let content = raw.trim_start_matches(' ');
            let indent = raw.len() - content.len();
            let trimmed = content.trim_end();
            if trimmed.is_empty() {
                continue;
            }
            if let Some(parent) = block_parent {
                if indent > parent {
                    continue;
                }
                block_parent = None;
            }
            if trimmed.starts_with('#') {
                continue;
            }
            if trimmed == "---" || trimmed == "..." || trimmed.starts_with("--- ") {
                stack.clear();
                continue;
            }
            if trimmed.starts_with("- ") || trimmed == "-" {
                continue;
            }
            let Some((key, value)) = split_key(trimmed) else {
                continue;
            };
            while stack.last().is_some_and(|(i, _)| *i >= indent) {
                stack.pop();
            }
            let mut path = String::new();
            for (_, parent) in &stack {
                path.push_str(parent);
                path.push('.');
            }
            path.push_str(&key);
            entries.push(Entry {
                path,
                line: line_no,
                column: indent + 1,
            });
            let value = strip_comment(value).trim();
            if value.is_empty() || value.starts_with('&') || value.starts_with('!') {
                stack.push((indent, key));
            } else if value.starts_with('|') || value.starts_with('>') {
                block_parent = Some(indent);
            }
        }
        KeyIndex { entries }
    }

    /// Line and column of the key at `path` (first occurrence).
    pub(crate) fn position(&self, path: &str) -> Option<(usize, usize)> {
        self.entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| (e.line, e.column))
    }

    /// The key path whose entry is on or most recently before `line`.
    pub(crate) fn path_at(&self, line: usize) -> Option<&str> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.line <= line)
            .map(|e| e.path.as_str())
    }

    /// Key paths with their raw (uncommented) values on the same line, for secret scrubbing.
    pub(crate) fn inline_values(text: &str) -> Vec<(String, &str)> {
        text.lines()
            .filter_map(|line| {
                let (key, value) = split_key(line.trim())?;
                let value = strip_comment(value).trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(value);
                Some((key, value))
            })
            .collect()
    }
}

/// Splits `key: value` (key possibly quoted). Returns `None` when the line is not a mapping entry.
fn split_key(line: &str) -> Option<(String, &str)> {
    if let Some(q) = line.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let close = line[1..].find(q)? + 1;
        let key = line[1..close].to_string();
        let rest = line[close + 1..].trim_start();
        let value = rest.strip_prefix(':')?;
        return Some((key, value));
    }
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b':' && bytes.get(i + 1).is_none_or(|n| *n == b' ' || *n == b'\t') {
            let key = line[..i].trim_end();
            if key.is_empty() || key.starts_with(['{', '[', '#', '&', '*', '!', '|', '>']) {
                return None;
            }
            return Some((key.to_string(), &line[i + 1..]));
        }
        if b == b'#' && i > 0 && bytes[i - 1] == b' ' {
            return None;
        }
    }
    None
}

/// Drops a trailing comment from a value (a `#` after whitespace, outside quotes).
fn strip_comment(value: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in value.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && value[..i].trim().is_empty() => quote = Some(c),
            None if c == '#' && prev_space => return &value[..i],
            None => {}
        }
        prev_space = c.is_whitespace();
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# comment
telemetryflow:
  endpoint: \"x:1\" # trailing
  tls:
    enabled: true

  retry:
    max_attempts: 0
agent:
  tags:
    environment: prod
collectors:
  kubernetes:
    exclude_namespaces:
      - kube-system
    interval: 30s
notes: |
  fake: key
after: 1
";

    #[test]
    fn finds_nested_keys() {
        let ix = KeyIndex::build(TEXT);
        assert_eq!(ix.position("telemetryflow.endpoint"), Some((3, 3)));
        assert_eq!(ix.position("telemetryflow.tls.enabled"), Some((5, 5)));
        assert_eq!(
            ix.position("telemetryflow.retry.max_attempts"),
            Some((8, 5))
        );
        assert_eq!(ix.position("agent.tags.environment"), Some((11, 5)));
        assert_eq!(ix.position("collectors.kubernetes.interval"), Some((16, 5)));
        assert_eq!(ix.position("notes.fake"), None);
        assert_eq!(ix.position("after"), Some((19, 1)));
        assert_eq!(
            ix.path_at(15),
            Some("collectors.kubernetes.exclude_namespaces")
        );
    }

    #[test]
    fn inline_values_unquote() {
        let values = KeyIndex::inline_values("a: \"s3cr3t\" # c\nb: 'x'\nc: plain\n");
        assert_eq!(
            values,
            [
                ("a".to_string(), "s3cr3t"),
                ("b".to_string(), "x"),
                ("c".to_string(), "plain")
            ]
        );
    }
}
