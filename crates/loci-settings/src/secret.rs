use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration secret (password, key, token, URL with credentials).
///
/// `Debug`, `Display` and `Serialize` all print `[REDACTED]`, so a secret can
/// never reach a log line or a config dump by accident; the value is zeroised
/// on drop. Code that needs the value calls [`Secret::expose`] explicitly.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub const REDACTED: &'static str = "[REDACTED]";

    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(Self::REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?} {s}"), "[REDACTED] [REDACTED]");
        assert_eq!(serde_json::to_string(&s).ok().as_deref(), Some("\"[REDACTED]\""));
        assert_eq!(s.expose(), "hunter2-hunter2");
    }
}
