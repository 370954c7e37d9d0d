use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

/// How values are encoded when they leave the caller: JSON for interop with other
/// languages (Celery speaks it), a compact binary form (postcard) for speed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    /// JSON text, as Python's `json` module reads and writes it.
    Json,
    /// postcard: a compact, non-self-describing binary form; both ends must agree on types.
    #[default]
    Binary,
}

impl Codec {
    /// The codec's short name (`"json"` or `"binary"`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "json",
            Codec::Binary => "binary",
        }
    }

    /// Encodes a value.
    ///
    /// # Errors
    /// [`Error::Encode`] when the value cannot be represented (for example a map with
    /// non-string keys in JSON).
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, Error> {
        match self {
            Codec::Json => serde_json::to_vec(value).map_err(|e| Error::Encode(e.to_string())),
            Codec::Binary => postcard::to_stdvec(value).map_err(|e| Error::Encode(e.to_string())),
        }
    }

    /// Decodes a value; the whole input must be consumed.
    ///
    /// # Errors
    /// [`Error::Decode`] naming the expected type when the bytes are not a `T`.
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, Error> {
        match self {
            Codec::Json => serde_json::from_slice(bytes).map_err(Error::decode::<T>),
            Codec::Binary => {
                let (value, rest) = postcard::take_from_bytes(bytes).map_err(Error::decode::<T>)?;
                if rest.is_empty() {
                    Ok(value)
                } else {
                    Err(Error::decode::<T>(format!(
                        "{} trailing bytes after the value",
                        rest.len()
                    )))
                }
            }
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Codec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Codec::Json),
            "binary" => Ok(Codec::Binary),
            other => Err(format!("unknown codec `{other}` (expected json or binary)")),
        }
    }
}

/// The argument list of a task that takes no arguments.
///
/// It encodes as an empty list (`[]` in JSON, nothing in binary) and, in JSON, also
/// accepts `null`, so that callers from other languages may send either.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoArgs;

impl Serialize for NoArgs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        serializer.serialize_tuple(0)?.end()
    }
}

impl<'de> Deserialize<'de> for NoArgs {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = NoArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an empty argument list")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<NoArgs, E> {
                Ok(NoArgs)
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<NoArgs, E> {
                Ok(NoArgs)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<NoArgs, A::Error> {
                match seq.next_element::<serde::de::IgnoredAny>()? {
                    None => Ok(NoArgs),
                    Some(_) => Err(serde::de::Error::invalid_length(1, &self)),
                }
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_any(Visitor)
        } else {
            deserializer.deserialize_tuple(0, Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn no_args_round_trips_and_accepts_null() {
        for codec in [Codec::Json, Codec::Binary] {
            let bytes = codec.encode(&NoArgs).unwrap();
            assert_eq!(codec.decode::<NoArgs>(&bytes).unwrap(), NoArgs);
        }
        assert_eq!(Codec::Json.encode(&NoArgs).unwrap(), b"[]");
        assert!(Codec::Binary.encode(&NoArgs).unwrap().is_empty());
        assert_eq!(Codec::Json.decode::<NoArgs>(b"null").unwrap(), NoArgs);
        assert!(Codec::Json.decode::<NoArgs>(b"[1]").is_err());
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = Codec::Binary.encode(&7u32).unwrap();
        bytes.push(0);
        let err = Codec::Binary.decode::<u32>(&bytes).unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
        assert!(err.to_string().contains("trailing"));
    }

    #[test]
    fn codec_names_parse_back() {
        for codec in [Codec::Json, Codec::Binary] {
            assert_eq!(codec.name().parse::<Codec>().unwrap(), codec);
        }
        assert!("xml".parse::<Codec>().is_err());
    }

    proptest! {
        #[test]
        fn round_trip(a in any::<i64>(), s in ".*", v in proptest::collection::vec(any::<f64>().prop_filter("finite", |x| x.is_finite()), 0..8), o in any::<Option<u16>>()) {
            let value = (a, s, v, o);
            for codec in [Codec::Json, Codec::Binary] {
                let bytes = codec.encode(&value).unwrap();
                prop_assert_eq!(codec.decode::<(i64, String, Vec<f64>, Option<u16>)>(&bytes).unwrap(), value.clone());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for codec in [Codec::Json, Codec::Binary] {
                let _outcome: Result<(i64, String, Vec<u32>), Error> = codec.decode(&bytes);
            }
        }
    }
}
