//! [`PolicyError`] and [`PolicyErrors`]: what is wrong with a policy document, and where.

use std::fmt;

/// What kind of problem a [`PolicyError`] reports.
///
/// ```
/// use fluxgate_core::policy::{parse_policies, PolicyErrorKind};
///
/// let errors = parse_policies(b"").unwrap_err();
/// assert_eq!(errors.first().kind, PolicyErrorKind::Empty);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The input is larger than [`MAX_INPUT_BYTES`](super::MAX_INPUT_BYTES).
    TooLarge,
    /// The input is not UTF-8 text.
    InvalidUtf8,
    /// The input holds no document (it is empty, or only comments).
    Empty,
    /// The YAML or JSON is malformed.
    Syntax,
    /// The document nests deeper than [`MAX_DEPTH`](super::MAX_DEPTH).
    TooDeep,
    /// A document is a scalar or a list where an object is expected.
    NotAnObject,
    /// A key that the schema does not know.
    UnknownField,
    /// A required key is absent.
    MissingField,
    /// A key appears twice in one mapping.
    DuplicateField,
    /// A value of the wrong type (a string where a number is expected, ...).
    InvalidType,
    /// A value of the right type that is not allowed (out of range, not a known name, ...).
    InvalidValue,
}

/// One problem in a policy document: where it is, what was found and what was expected.
///
/// Its `Display` is one line, such as
/// `document 1 (payments/checkout), line 21: spec.canary.weight: found 150, expected an integer from 0 to 100`.
///
/// ```
/// use fluxgate_core::policy::{parse_policies, PolicyErrorKind};
///
/// let yaml = b"apiVersion: fluxgate.io/v1beta1\nkind: TrafficPolicy\nmetadata:\n  name: a\nspec:\n  canary:\n    weight: 150\n";
/// let errors = parse_policies(yaml).unwrap_err();
/// let error = errors.first();
/// assert_eq!(error.path, "spec.canary.weight");
/// assert_eq!(error.line, Some(7));
/// assert_eq!(error.kind, PolicyErrorKind::InvalidValue);
/// assert_eq!(
///     error.to_string(),
///     "document 1 (a), line 7: spec.canary.weight: found 150, expected an integer from 0 to 100"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PolicyError {
    /// The index of the document in its input, from 0; `None` for a problem with the whole input
    /// or for a policy built in code. Displayed from 1.
    pub document: Option<usize>,
    /// `namespace/name` (or `name`) of the document, when it could be read.
    pub id: Option<String>,
    /// The field path, such as `spec.canary.match[1].header.name`; empty for the whole document.
    pub path: String,
    /// The line (from 1) where the input shows the problem, when there is an input.
    pub line: Option<usize>,
    /// The column (from 1) that goes with `line`.
    pub column: Option<usize>,
    /// What kind of problem this is.
    pub kind: PolicyErrorKind,
    /// The value found, as written (strings quoted).
    pub found: Option<String>,
    /// What was expected instead.
    pub expected: Option<String>,
    /// The nearest allowed name, for a misspelt field or enum value.
    pub suggestion: Option<String>,
    /// More detail, such as the parser's message.
    pub hint: Option<String>,
}

impl PolicyError {
    /// A new error of `kind` at `path`, with no location yet.
    ///
    /// ```
    /// use fluxgate_core::policy::{PolicyError, PolicyErrorKind};
    ///
    /// let e = PolicyError::new(PolicyErrorKind::MissingField, "metadata.name");
    /// assert_eq!(e.to_string(), "metadata.name: missing required field");
    /// ```
    #[must_use]
    pub fn new(kind: PolicyErrorKind, path: impl Into<String>) -> Self {
        Self {
            document: None,
            id: None,
            path: path.into(),
            line: None,
            column: None,
            kind,
            found: None,
            expected: None,
            suggestion: None,
            hint: None,
        }
    }

    /// Sets the value found and what was expected.
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind};
    /// let e = PolicyError::new(PolicyErrorKind::InvalidValue, "spec.canary.weight")
    ///     .found_expected("150", "an integer from 0 to 100");
    /// assert_eq!(e.expected.as_deref(), Some("an integer from 0 to 100"));
    /// ```
    #[must_use]
    pub fn found_expected(mut self, found: impl Into<String>, expected: impl Into<String>) -> Self {
        self.found = Some(found.into());
        self.expected = Some(expected.into());
        self
    }

    /// Sets the hint (a suggestion or a detail message).
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind};
    /// let e = PolicyError::new(PolicyErrorKind::Syntax, "").with_hint("mapping values are not allowed");
    /// assert_eq!(e.to_string(), "syntax error: mapping values are not allowed");
    /// ```
    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the line and column (both from 1).
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind};
    /// let e = PolicyError::new(PolicyErrorKind::Empty, "").at(3, 1);
    /// assert_eq!(e.to_string(), "line 3: the input holds no document");
    /// ```
    #[must_use]
    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    fn body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lead = match self.kind {
            PolicyErrorKind::TooLarge => "the input is too large",
            PolicyErrorKind::InvalidUtf8 => "the input is not UTF-8 text",
            PolicyErrorKind::Empty => "the input holds no document",
            PolicyErrorKind::Syntax => "syntax error",
            PolicyErrorKind::TooDeep => "the document nests too deeply",
            PolicyErrorKind::NotAnObject => "the document is not an object",
            PolicyErrorKind::UnknownField => "unknown field",
            PolicyErrorKind::MissingField => "missing required field",
            PolicyErrorKind::DuplicateField => "duplicate field",
            PolicyErrorKind::InvalidType | PolicyErrorKind::InvalidValue => "",
        };
        f.write_str(lead)?;
        let mut sep = if lead.is_empty() { "" } else { ", " };
        if let Some(found) = &self.found {
            write!(f, "{sep}found {found}")?;
            sep = ", ";
        }
        if let Some(expected) = &self.expected {
            write!(f, "{sep}expected {expected}")?;
            sep = ", ";
        }
        if let Some(hint) = &self.hint {
            let sep = if self.kind == PolicyErrorKind::Syntax {
                ": "
            } else {
                sep
            };
            write!(f, "{sep}{hint}")?;
        }
        if let Some(suggestion) = &self.suggestion {
            write!(f, ", did you mean {suggestion}?")?;
        }
        Ok(())
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut prefix = false;
        if let Some(document) = self.document {
            write!(f, "document {}", document + 1)?;
            if let Some(id) = &self.id {
                write!(f, " ({id})")?;
            }
            prefix = true;
        }
        if let Some(line) = self.line {
            write!(f, "{}line {line}", if prefix { ", " } else { "" })?;
            prefix = true;
        }
        if prefix {
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        self.body(f)
    }
}

impl std::error::Error for PolicyError {}

/// One or more [`PolicyError`]s (never none), displayed one per line.
///
/// ```
/// use fluxgate_core::policy::{PolicyError, PolicyErrorKind, PolicyErrors};
///
/// let errors = PolicyErrors::from(PolicyError::new(PolicyErrorKind::MissingField, "kind"));
/// assert_eq!(errors.len(), 1);
/// assert_eq!(errors.to_string(), "kind: missing required field");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors {
    first: Box<PolicyError>,
    rest: Vec<PolicyError>,
}

impl PolicyErrors {
    /// Builds from a list; `None` when the list is empty.
    ///
    /// ```
    /// # use fluxgate_core::policy::PolicyErrors;
    /// assert!(PolicyErrors::from_vec(Vec::new()).is_none());
    /// ```
    #[must_use]
    pub fn from_vec(errors: Vec<PolicyError>) -> Option<Self> {
        let mut iter = errors.into_iter();
        let first = iter.next()?;
        Some(Self {
            first: Box::new(first),
            rest: iter.collect(),
        })
    }

    /// The first error.
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind, PolicyErrors};
    /// let errors = PolicyErrors::from(PolicyError::new(PolicyErrorKind::Empty, ""));
    /// assert_eq!(errors.first().kind, PolicyErrorKind::Empty);
    /// ```
    #[must_use]
    pub fn first(&self) -> &PolicyError {
        &self.first
    }

    /// All the errors, in document order.
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind, PolicyErrors};
    /// let errors = PolicyErrors::from(PolicyError::new(PolicyErrorKind::Empty, ""));
    /// assert_eq!(errors.iter().count(), 1);
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = &PolicyError> {
        std::iter::once(&*self.first).chain(&self.rest)
    }

    /// How many errors there are (at least one).
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind, PolicyErrors};
    /// assert_eq!(PolicyErrors::from(PolicyError::new(PolicyErrorKind::Empty, "")).len(), 1);
    /// ```
    #[must_use]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        1 + self.rest.len()
    }

    /// The errors as a vector.
    ///
    /// ```
    /// # use fluxgate_core::policy::{PolicyError, PolicyErrorKind, PolicyErrors};
    /// let v = PolicyErrors::from(PolicyError::new(PolicyErrorKind::Empty, "")).into_vec();
    /// assert_eq!(v.len(), 1);
    /// ```
    #[must_use]
    pub fn into_vec(self) -> Vec<PolicyError> {
        let mut all = Vec::with_capacity(self.len());
        all.push(*self.first);
        all.extend(self.rest);
        all
    }
}

impl From<PolicyError> for PolicyErrors {
    fn from(first: PolicyError) -> Self {
        Self {
            first: Box::new(first),
            rest: Vec::new(),
        }
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}
