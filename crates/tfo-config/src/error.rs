//! The one error type of this crate.

use std::fmt;

/// What went wrong, for callers that want to branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid YAML (or has a duplicate key).
    Syntax,
    /// A key that does not exist in its section.
    UnknownKey,
    /// A value of the wrong type (e.g. a list where a string is expected).
    WrongType,
    /// A value of the right type that is not allowed (bad duration, enum value, zero interval…).
    InvalidValue,
    /// `${VAR}` names a variable that is not set and has no default.
    MissingVariable,
    /// A malformed `${…}` reference.
    BadVariable,
}

/// A configuration error that names where it happened and what would be accepted.
///
/// Displays as `<file>:<line>:<column>: <key.path>: <message>; allowed: <what>`, leaving out
/// the parts that are not known. Never contains secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<Inner>);

// Boxed so `Result<_, ConfigError>` stays one pointer wide on the error side.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    file: String,
    line: Option<usize>,
    column: Option<usize>,
    path: Option<String>,
    message: String,
    allowed: Option<String>,
}

impl ConfigError {
    pub(crate) fn new(kind: ErrorKind, file: &str, message: impl Into<String>) -> Self {
        ConfigError(Box::new(Inner {
            kind,
            file: file.to_string(),
            line: None,
            column: None,
            path: None,
            message: message.into(),
            allowed: None,
        }))
    }

    pub(crate) fn at(mut self, line: Option<usize>, column: Option<usize>) -> Self {
        self.0.line = line;
        self.0.column = if line.is_some() { column } else { None };
        self
    }

    pub(crate) fn with_path(mut self, path: Option<String>) -> Self {
        self.0.path = path.filter(|p| !p.is_empty());
        self
    }

    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.0.message = message.into();
        self
    }

    pub(crate) fn with_allowed(mut self, allowed: Option<String>) -> Self {
        self.0.allowed = allowed;
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The file (or origin label) the error is in.
    pub fn file(&self) -> &str {
        &self.0.file
    }

    /// 1-based line, when known.
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// 1-based column, when known.
    pub fn column(&self) -> Option<usize> {
        self.0.column
    }

    /// Dotted key path such as `collectors.system.interval`, when known.
    pub fn path(&self) -> Option<&str> {
        self.0.path.as_deref()
    }

    /// What is wrong, without location or allowed values.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// What would have been accepted, when known.
    pub fn allowed(&self) -> Option<&str> {
        self.0.allowed.as_deref()
    }

    /// Replace every occurrence of each secret in the human-readable parts.
    pub(crate) fn scrub(mut self, secrets: &[String]) -> Self {
        for secret in secrets {
            if secret.len() < 3 {
                continue;
            }
            let redacted = crate::secret::REDACTED;
            self.0.message = self.0.message.replace(secret.as_str(), redacted);
            if let Some(allowed) = &mut self.0.allowed {
                *allowed = allowed.replace(secret.as_str(), redacted);
            }
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.file)?;
        if let Some(line) = self.0.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.0.column {
                write!(f, ":{column}")?;
            }
        }
        if let Some(path) = &self.0.path {
            write!(f, ": {path}")?;
        }
        write!(f, ": {}", self.0.message)?;
        if let Some(allowed) = &self.0.allowed {
            write!(f, "; allowed: {allowed}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_all_parts() {
        let e = ConfigError::new(ErrorKind::InvalidValue, "a.yaml", "invalid value `udp`")
            .at(Some(3), Some(13))
            .with_path(Some("telemetryflow.protocol".into()))
            .with_allowed(Some("grpc, http".into()));
        assert_eq!(
            e.to_string(),
            "a.yaml:3:13: telemetryflow.protocol: invalid value `udp`; allowed: grpc, http"
        );
        let bare = ConfigError::new(ErrorKind::Io, "b.yaml", "not found");
        assert_eq!(bare.to_string(), "b.yaml: not found");
    }
}
