use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::CoreError;

/// Tenant identifier, taken verbatim from the access token's `org_id` claim.
///
/// It is the tenant key of every store (and the value of PostgreSQL's
/// `loci.org_id` setting), so it is deliberately restricted: 1..=128 visible
/// ASCII characters without whitespace, quotes, backticks or backslashes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String)]
pub struct OrgId(String);

impl OrgId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(raw: &str) -> Result<Self, CoreError> {
        if raw.is_empty() {
            return Err(CoreError::InvalidOrgId("empty"));
        }
        if raw.len() > Self::MAX_LEN {
            return Err(CoreError::InvalidOrgId("longer than 128 characters"));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\' | b'`')) {
            return Err(CoreError::InvalidOrgId("only visible ASCII without quotes or backslashes is allowed"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgId({})", self.0)
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for OrgId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for OrgId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(Uuid);

        impl $name {
            /// A new time-ordered (v7) id: index-friendly and sortable by creation.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| CoreError::InvalidId(format!("`{s}` is not a UUID")))
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

uuid_id!(
    /// A user inside one org (internal id; the token's `sub` maps to it).
    UserId
);
uuid_id!(
    /// An app (client) through which a user writes memories.
    AppId
);
uuid_id!(
    /// A stored memory.
    MemoryId
);
uuid_id!(
    /// A category of memories inside one org.
    CategoryId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_id_accepts_typical_identity_provider_values() {
        for ok in ["acme", "org_2abcDEF", "tenant-1.eu", "urn:org:42"] {
            assert_eq!(OrgId::parse(ok).map(|o| o.to_string()), Ok(ok.to_owned()));
        }
    }

    #[test]
    fn org_id_rejects_empty_long_and_unsafe_values() {
        let long = "a".repeat(129);
        for bad in ["", "a b", "x'; drop", "tab\t", "é", long.as_str()] {
            assert!(OrgId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn uuid_ids_round_trip_and_reject_garbage() {
        let id = MemoryId::new();
        assert_eq!(id.to_string().parse::<MemoryId>(), Ok(id));
        assert!("not-a-uuid".parse::<MemoryId>().is_err());
    }
}

uuid_id!(
    /// An asynchronous job (an `add_memories` with `infer` over a large input).
    JobId
);
