//! Encodings for the bytes that cross the Plinth plug-in boundary.
//!
//! Plug-in calls take and return plain byte buffers. This crate turns Rust
//! values into such buffers ([`ToBytes`]) and back ([`FromBytes`],
//! [`FromBytesOwned`]). It is shared by the host SDK and the plug-in PDK, so
//! it is plain `std` Rust with no platform-specific code, and it mirrors the
//! shape of Extism's `extism-convert` so plug-in authors feel at home.
//!
//! Raw bytes and strings pass through unchanged, numbers are little-endian,
//! `bool` is a single `0`/`1` byte, and the [`Json`], [`Msgpack`] and
//! [`Base64`] wrappers select a structured encoding.
//!
//! ```
//! use plinth_convert::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Greeting {
//!     name: String,
//!     times: u32,
//! }
//!
//! # fn main() -> Result<(), plinth_convert::Error> {
//! let input = Json(Greeting { name: "Ada".into(), times: 2 });
//! let bytes = input.to_bytes()?;
//! assert_eq!(bytes, br#"{"name":"Ada","times":2}"#);
//!
//! let Json(back) = Json::<Greeting>::from_bytes(&bytes)?;
//! assert_eq!(back, input.into_inner());
//!
//! assert_eq!(7u32.to_bytes()?, [7, 0, 0, 0]);
//! let text: &str = FromBytes::from_bytes(b"hello")?;
//! assert_eq!(text, "hello");
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::any::type_name;
use std::ops::{Deref, DerefMut};

use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Everything needed to encode and decode call inputs and outputs.
pub mod prelude {
    pub use crate::{Base64, Error, FromBytes, FromBytesOwned, Json, Msgpack, ToBytes};
}

/// Why a value could not be converted to or from bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Text input was not valid UTF-8.
    #[error("input is not valid UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
    /// JSON encoding failed, or the input was not JSON of the expected shape.
    #[error("JSON conversion failed: {0}")]
    Json(#[from] serde_json::Error),
    /// A value could not be encoded as MessagePack (message names the type).
    #[error("could not encode value as MessagePack: {0}")]
    MsgpackEncode(String),
    /// The input was not MessagePack of the expected shape (message names the type).
    #[error("input is not valid MessagePack: {0}")]
    MsgpackDecode(String),
    /// The input was not valid standard (padded) base64.
    #[error("input is not valid base64: {0}")]
    Base64(String),
    /// A fixed-size value received the wrong number of bytes.
    #[error("expected {expected} bytes for {type_name}, got {actual}")]
    Length {
        /// The type being decoded.
        type_name: &'static str,
        /// How many bytes that type needs.
        expected: usize,
        /// How many bytes were given.
        actual: usize,
    },
    /// Any other conversion failure, e.g. from a user implementation.
    #[error("{0}")]
    Custom(String),
}

impl Error {
    /// Builds an [`Error::Custom`] from any displayable message.
    pub fn custom(msg: impl std::fmt::Display) -> Self {
        Error::Custom(msg.to_string())
    }
}

impl From<std::string::FromUtf8Error> for Error {
    fn from(e: std::string::FromUtf8Error) -> Self {
        Error::Utf8(e.utf8_error())
    }
}

/// Turns a value into the bytes handed across the plug-in boundary.
///
/// The lifetime lets borrowed inputs (`&[u8]`, `&str`) be passed through
/// without copying.
pub trait ToBytes<'a> {
    /// The byte container produced; borrowed or owned depending on the input.
    type Bytes: AsRef<[u8]>;

    /// Encodes `self`.
    fn to_bytes(&self) -> Result<Self::Bytes, Error>;
}

/// Builds a value from bytes; the value may borrow from them.
pub trait FromBytes<'a>: Sized {
    /// Decodes a value from `data`.
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error>;
}

/// Builds a value from bytes without borrowing from them.
///
/// Every `FromBytesOwned` type is also [`FromBytes`] for any lifetime.
pub trait FromBytesOwned: Sized {
    /// Decodes a value from `data`.
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error>;
}

impl<T: FromBytesOwned> FromBytes<'_> for T {
    fn from_bytes(data: &[u8]) -> Result<Self, Error> {
        T::from_bytes_owned(data)
    }
}

// ---------------------------------------------------------------------------
// Raw bytes and text: passed through unchanged.

impl<'a> ToBytes<'a> for &'a [u8] {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(*self)
    }
}

impl<'a> ToBytes<'a> for &'a str {
    type Bytes = &'a str;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(*self)
    }
}

impl ToBytes<'_> for Vec<u8> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(self.clone())
    }
}

impl ToBytes<'_> for String {
    type Bytes = String;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(self.clone())
    }
}

impl<const N: usize> ToBytes<'_> for [u8; N] {
    type Bytes = [u8; N];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(*self)
    }
}

// Covers `&Vec<u8>`, `&String`, `&[u8; N]`, `&Json<T>` and so on. It cannot
// overlap the `&[u8]`/`&str` impls because `T` is implicitly `Sized`.
impl<'a, T: ToBytes<'a>> ToBytes<'a> for &'a T {
    type Bytes = T::Bytes;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        T::to_bytes(*self)
    }
}

impl<'a> FromBytes<'a> for &'a [u8] {
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error> {
        Ok(data)
    }
}

impl<'a> FromBytes<'a> for &'a str {
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error> {
        Ok(std::str::from_utf8(data)?)
    }
}

impl FromBytesOwned for Vec<u8> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(data.to_vec())
    }
}

impl FromBytesOwned for String {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(std::str::from_utf8(data)?.to_owned())
    }
}

// ---------------------------------------------------------------------------
// Unit and bool.

/// `()` encodes as no bytes.
impl ToBytes<'_> for () {
    type Bytes = [u8; 0];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok([])
    }
}

/// `()` accepts any input and ignores it, so a caller can discard an output
/// it does not care about.
impl FromBytesOwned for () {
    fn from_bytes_owned(_data: &[u8]) -> Result<Self, Error> {
        Ok(())
    }
}

/// `bool` encodes as one byte, `1` for true and `0` for false.
impl ToBytes<'_> for bool {
    type Bytes = [u8; 1];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok([u8::from(*self)])
    }
}

/// `bool` needs exactly one byte; any non-zero byte is true, matching C and
/// the other Extism PDKs.
impl FromBytesOwned for bool {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        match data {
            [b] => Ok(*b != 0),
            _ => Err(Error::Length {
                type_name: "bool",
                expected: 1,
                actual: data.len(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------
// Numbers: fixed-width little-endian, matching wasm's own byte order.
// `isize`/`usize` are left out on purpose: their width differs between the
// 64-bit host and the 32-bit guest.

macro_rules! le_numbers {
    ($($t:ty),* $(,)?) => {$(
        impl ToBytes<'_> for $t {
            type Bytes = [u8; std::mem::size_of::<$t>()];
            fn to_bytes(&self) -> Result<Self::Bytes, Error> {
                Ok(self.to_le_bytes())
            }
        }

        impl FromBytesOwned for $t {
            fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
                let bytes = data.try_into().map_err(|_| Error::Length {
                    type_name: stringify!($t),
                    expected: std::mem::size_of::<$t>(),
                    actual: data.len(),
                })?;
                Ok(<$t>::from_le_bytes(bytes))
            }
        }
    )*};
}

le_numbers!(i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64);

// ---------------------------------------------------------------------------
// Wrappers selecting a structured encoding.

macro_rules! wrapper_common {
    ($name:ident) => {
        impl<T> $name<T> {
            /// Unwraps the inner value.
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> From<T> for $name<T> {
            fn from(value: T) -> Self {
                $name(value)
            }
        }

        impl<T> Deref for $name<T> {
            type Target = T;
            fn deref(&self) -> &T {
                &self.0
            }
        }

        impl<T> DerefMut for $name<T> {
            fn deref_mut(&mut self) -> &mut T {
                &mut self.0
            }
        }
    };
}

/// Encodes the inner value as JSON text (via `serde_json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Json<T>(pub T);
wrapper_common!(Json);

impl<T: Serialize> ToBytes<'_> for Json<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(serde_json::to_vec(&self.0)?)
    }
}

impl<T: DeserializeOwned> FromBytesOwned for Json<T> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(Json(serde_json::from_slice(data)?))
    }
}

/// Encodes the inner value as MessagePack (via `rmp-serde`).
///
/// Structs are written as maps keyed by field name, so plug-ins in other
/// languages can decode them without knowing the field order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Msgpack<T>(pub T);
wrapper_common!(Msgpack);

impl<T: Serialize> ToBytes<'_> for Msgpack<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        rmp_serde::to_vec_named(&self.0)
            .map_err(|e| Error::MsgpackEncode(format!("{}: {e}", type_name::<T>())))
    }
}

impl<T: DeserializeOwned> FromBytesOwned for Msgpack<T> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        rmp_serde::from_slice(data)
            .map(Msgpack)
            .map_err(|e| Error::MsgpackDecode(format!("expected {}: {e}", type_name::<T>())))
    }
}

/// Encodes the inner bytes as standard, padded base64 text.
///
/// Any `T: AsRef<[u8]>` can be encoded; decoding yields `Base64<Vec<u8>>` or
/// `Base64<String>` (the latter also checks the decoded bytes are UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Base64<T>(pub T);
wrapper_common!(Base64);

impl<T: AsRef<[u8]>> ToBytes<'_> for Base64<T> {
    type Bytes = String;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.0.as_ref()))
    }
}

fn decode_base64(data: &[u8]) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| Error::Base64(e.to_string()))
}

impl FromBytesOwned for Base64<Vec<u8>> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        decode_base64(data).map(Base64)
    }
}

impl FromBytesOwned for Base64<String> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(Base64(String::from_utf8(decode_base64(data)?)?))
    }
}
