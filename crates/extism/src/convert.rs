//! Encodings of call inputs and outputs, with the API of `extism-convert` (what `extism::convert`
//! is in Extism): [`ToBytes`], [`FromBytes`], [`FromBytesOwned`] whose errors are
//! [`anyhow::Error`], the [`Json`], [`Msgpack`], [`Base64`], [`Raw`] and [`Prost`] encodings, the
//! `#[derive(ToBytes, FromBytes)]` macros with `#[encoding(..)]`, the [`encoding!`] macro and
//! [`MemoryHandle`].
//!
//! `Json`, `Msgpack` and `Base64` are Plinth's own types (`plinth::Json` is the same type), so
//! values move between this crate and `plinth` without conversion. The bytes match
//! `extism-convert`'s: MessagePack is written with `rmp_serde::to_vec` (structs as arrays).

use base64::Engine as _;

pub use anyhow::Error;
pub use plinth::convert::{Base64, Json, Msgpack};
pub use plinth_extism_macros::{FromBytes, ToBytes};

pub use crate::encoding;

/// Turns a value into the bytes of a call input or of a host function's output.
pub trait ToBytes<'a> {
    /// The encoded bytes, borrowed or owned.
    type Bytes: AsRef<[u8]>;

    /// Encodes `self`.
    fn to_bytes(&self) -> Result<Self::Bytes, Error>;
}

/// Decodes a value from bytes; the value may borrow them.
pub trait FromBytes<'a>: Sized {
    /// Decodes `data`.
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error>;
}

/// Decodes a value that owns its data. Every such type is also [`FromBytes`].
pub trait FromBytesOwned: Sized {
    /// Decodes `data`.
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error>;
}

impl<T: FromBytesOwned> FromBytes<'_> for T {
    fn from_bytes(data: &[u8]) -> Result<Self, Error> {
        T::from_bytes_owned(data)
    }
}

/// Where a block of Extism memory is: its offset (the handle) and length.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Eq, Ord)]
pub struct MemoryHandle {
    /// Offset of the block in Extism memory.
    pub offset: u64,
    /// Length of the block in bytes.
    pub length: u64,
}

impl MemoryHandle {
    /// A handle for the block at `offset`.
    ///
    /// # Safety
    /// The block is not checked here. (Plinth checks every access against the plug-in's
    /// memory, so a wrong handle gives an error, not undefined behaviour; the function stays
    /// `unsafe` to keep Extism's signature.)
    pub unsafe fn new(offset: u64, length: u64) -> MemoryHandle {
        MemoryHandle { offset, length }
    }

    /// The handle of no block: offset 0, length 0.
    pub fn null() -> MemoryHandle {
        MemoryHandle {
            offset: 0,
            length: 0,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn len(&self) -> usize {
        self.length as usize
    }

    pub fn is_empty(&self) -> bool {
        self.length == 0
    }
}

impl From<plinth::MemoryHandle> for MemoryHandle {
    fn from(h: plinth::MemoryHandle) -> Self {
        MemoryHandle {
            offset: h.offset,
            length: h.length,
        }
    }
}

impl From<MemoryHandle> for plinth::MemoryHandle {
    fn from(h: MemoryHandle) -> Self {
        plinth::MemoryHandle {
            offset: h.offset,
            length: h.length,
        }
    }
}

/// Makes a new encoding: `encoding!(pub MyJson, serde_json::to_vec, serde_json::from_slice)`
/// declares `pub struct MyJson<T>(pub T)` that encodes with the first function and decodes
/// with the second (both over serde).
#[macro_export]
macro_rules! encoding {
    ($vis:vis $name:ident, $to_vec:expr, $from_slice:expr) => {
        #[doc = concat!("The ", stringify!($name), " encoding.")]
        #[derive(Debug)]
        $vis struct $name<T>(pub T);

        impl<T> $name<T> {
            pub fn into_inner(self) -> T {
                self.0
            }
        }

        impl<T> ::std::convert::From<T> for $name<T> {
            fn from(value: T) -> Self {
                $name(value)
            }
        }

        impl<'a, T: $crate::__serde::Serialize> $crate::convert::ToBytes<'a> for $name<T> {
            type Bytes = ::std::vec::Vec<u8>;
            fn to_bytes(&self) -> ::std::result::Result<Self::Bytes, $crate::convert::Error> {
                ::std::result::Result::Ok($to_vec(&self.0)?)
            }
        }

        impl<T: $crate::__serde::de::DeserializeOwned> $crate::convert::FromBytesOwned for $name<T> {
            fn from_bytes_owned(
                data: &[u8],
            ) -> ::std::result::Result<Self, $crate::convert::Error> {
                ::std::result::Result::Ok($name($from_slice(data)?))
            }
        }
    };
}

// Raw bytes and text pass through.

impl ToBytes<'_> for () {
    type Bytes = [u8; 0];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok([])
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

impl<'a> ToBytes<'a> for &'a [u8] {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(self)
    }
}

impl<'a> ToBytes<'a> for &'a str {
    type Bytes = &'a str;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(self)
    }
}

impl<'a, T: ToBytes<'a>> ToBytes<'a> for &'a T {
    type Bytes = T::Bytes;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        T::to_bytes(self)
    }
}

/// `None` encodes as no bytes.
impl<'a, T: ToBytes<'a>> ToBytes<'a> for Option<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        match self {
            Some(v) => Ok(v.to_bytes()?.as_ref().to_vec()),
            None => Ok(Vec::new()),
        }
    }
}

impl ToBytes<'_> for bool {
    type Bytes = [u8; 1];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok([u8::from(*self)])
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

/// No bytes decode as `None`.
impl<'a, T: FromBytes<'a>> FromBytes<'a> for Option<T> {
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error> {
        if data.is_empty() {
            Ok(None)
        } else {
            T::from_bytes(data).map(Some)
        }
    }
}

impl<'a, T: FromBytes<'a>> FromBytes<'a> for std::io::Cursor<T> {
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error> {
        Ok(std::io::Cursor::new(T::from_bytes(data)?))
    }
}

impl FromBytesOwned for Box<[u8]> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(data.into())
    }
}

impl FromBytesOwned for Vec<u8> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(data.to_vec())
    }
}

impl FromBytesOwned for String {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(std::str::from_utf8(data)?.to_string())
    }
}

/// Any bytes decode as `()`, so an output can be ignored.
impl FromBytesOwned for () {
    fn from_bytes_owned(_: &[u8]) -> Result<Self, Error> {
        Ok(())
    }
}

/// The first byte, non-zero for true (as `extism-convert` reads it).
impl FromBytesOwned for bool {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        match data.first() {
            Some(b) => Ok(*b != 0),
            None => anyhow::bail!("expected one byte to read a bool, got none"),
        }
    }
}

// Numbers are little-endian, the numbers `extism-convert` has.
macro_rules! numbers {
    ($($t:ty),*) => {$(
        impl ToBytes<'_> for $t {
            type Bytes = [u8; std::mem::size_of::<$t>()];
            fn to_bytes(&self) -> Result<Self::Bytes, Error> {
                Ok(self.to_le_bytes())
            }
        }

        impl FromBytesOwned for $t {
            fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
                let bytes = data.try_into().map_err(|_| {
                    anyhow::anyhow!(
                        "expected {} bytes for {}, got {}",
                        std::mem::size_of::<$t>(),
                        stringify!($t),
                        data.len()
                    )
                })?;
                Ok(<$t>::from_le_bytes(bytes))
            }
        }
    )*};
}

numbers!(f64, f32, i64, i32, u64, u32);

impl ToBytes<'_> for serde_json::Value {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(serde_json::to_vec(self)?)
    }
}

impl FromBytesOwned for serde_json::Value {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(serde_json::from_slice(data)?)
    }
}

// The encodings Plinth shares: encoded the way `extism-convert` encodes them.

impl<T: serde::Serialize> ToBytes<'_> for Json<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(serde_json::to_vec(&self.0)?)
    }
}

impl<T: serde::de::DeserializeOwned> FromBytesOwned for Json<T> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(Json(serde_json::from_slice(data)?))
    }
}

impl<T: serde::Serialize> ToBytes<'_> for Msgpack<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(rmp_serde::to_vec(&self.0)?)
    }
}

impl<T: serde::de::DeserializeOwned> FromBytesOwned for Msgpack<T> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(Msgpack(rmp_serde::from_slice(data)?))
    }
}

impl<T: AsRef<[u8]>> ToBytes<'_> for Base64<T> {
    type Bytes = String;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(base64::engine::general_purpose::STANDARD.encode(self.0.as_ref()))
    }
}

impl FromBytesOwned for Base64<Vec<u8>> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(Base64(
            base64::engine::general_purpose::STANDARD.decode(data)?,
        ))
    }
}

impl FromBytesOwned for Base64<String> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
        Ok(Base64(String::from_utf8(bytes)?))
    }
}

/// The bytes of a plain-data value as they are in memory (`bytemuck::Pod`), unconverted.
#[cfg(feature = "raw")]
#[derive(Debug)]
pub struct Raw<'a, T: bytemuck::Pod>(pub &'a T);

#[cfg(feature = "raw")]
impl<'a, T: bytemuck::Pod> ToBytes<'a> for Raw<'a, T> {
    type Bytes = &'a [u8];
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(bytemuck::bytes_of(self.0))
    }
}

#[cfg(feature = "raw")]
impl<'a, T: bytemuck::Pod> FromBytes<'a> for Raw<'a, T> {
    fn from_bytes(data: &'a [u8]) -> Result<Self, Error> {
        bytemuck::try_from_bytes(data)
            .map(Raw)
            .map_err(|e| anyhow::anyhow!("cannot read {} bytes as the value: {e}", data.len()))
    }
}

/// Protocol Buffers through `prost` messages.
#[cfg(feature = "prost")]
#[derive(Debug)]
pub struct Prost<T: prost::Message>(pub T);

#[cfg(feature = "prost")]
impl<T: prost::Message> From<T> for Prost<T> {
    fn from(value: T) -> Self {
        Prost(value)
    }
}

#[cfg(feature = "prost")]
impl<T: prost::Message> ToBytes<'_> for Prost<T> {
    type Bytes = Vec<u8>;
    fn to_bytes(&self) -> Result<Self::Bytes, Error> {
        Ok(self.0.encode_to_vec())
    }
}

#[cfg(feature = "prost")]
impl<T: prost::Message + Default> FromBytesOwned for Prost<T> {
    fn from_bytes_owned(data: &[u8]) -> Result<Self, Error> {
        Ok(Prost(T::decode(data)?))
    }
}
