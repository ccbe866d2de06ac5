use std::collections::BTreeMap;

use plinth_convert::prelude::*;
use serde::{Deserialize, Serialize};

/// Encodes through the generic trait, the way the SDK will see inputs.
fn enc<'a, T: ToBytes<'a>>(value: T) -> Vec<u8> {
    value.to_bytes().expect("encode").as_ref().to_vec()
}

fn dec<T: FromBytesOwned>(data: &[u8]) -> T {
    T::from_bytes_owned(data).expect("decode")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Inner {
    id: u64,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Outer {
    name: String,
    score: f64,
    inner: Inner,
    maybe: Option<Inner>,
}

fn sample() -> Outer {
    Outer {
        name: "plinth".into(),
        score: 1.5,
        inner: Inner {
            id: 42,
            tags: vec!["a".into(), "b".into()],
        },
        maybe: None,
    }
}

// --- raw bytes and text ----------------------------------------------------

#[test]
fn raw_inputs_pass_through() {
    let v = vec![1u8, 2, 3];
    let s = String::from("hi");
    assert_eq!(enc(&v[..]), [1, 2, 3]);
    assert_eq!(enc(v.clone()), [1, 2, 3]);
    assert_eq!(enc(&v), [1, 2, 3]);
    assert_eq!(enc([1u8, 2, 3]), [1, 2, 3]);
    let array_ref: &[u8; 3] = &[1, 2, 3];
    assert_eq!(enc(array_ref), [1, 2, 3]);
    assert_eq!(enc("hi"), b"hi");
    assert_eq!(enc(s.clone()), b"hi");
    assert_eq!(enc(&s), b"hi");
    assert_eq!(enc(()), b"");
}

#[test]
fn raw_round_trips() {
    let data = [0u8, 1, 2, 255];
    assert_eq!(dec::<Vec<u8>>(&enc(data.to_vec())), data);
    assert_eq!(dec::<String>(&enc("héllo")), "héllo");
    let borrowed: &[u8] = FromBytes::from_bytes(&data).unwrap();
    assert_eq!(borrowed, data);
    let text: &str = FromBytes::from_bytes("ünïcode".as_bytes()).unwrap();
    assert_eq!(text, "ünïcode");
    // Owned types are usable through `FromBytes` too.
    let owned = <Vec<u8> as FromBytes>::from_bytes(&data).unwrap();
    assert_eq!(owned, data);
}

#[test]
fn borrowed_values_really_borrow() {
    let data = b"borrow me".to_vec();

    let slice: &[u8] = FromBytes::from_bytes(&data).unwrap();
    assert_eq!(slice.as_ptr(), data.as_ptr());
    assert_eq!(slice.len(), data.len());

    let text: &str = FromBytes::from_bytes(&data).unwrap();
    assert_eq!(text.as_ptr(), data.as_ptr());

    let input: &[u8] = &data;
    assert_eq!(input.to_bytes().unwrap().as_ptr(), data.as_ptr());
    let s = "no copy";
    assert_eq!(s.to_bytes().unwrap().as_ptr(), s.as_ptr());
}

#[test]
fn invalid_utf8_is_rejected() {
    let bad = [b'o', b'k', 0xff, 0xfe];
    let err = <&str as FromBytes>::from_bytes(&bad).unwrap_err();
    assert!(matches!(err, Error::Utf8(_)), "{err:?}");
    assert!(err.to_string().contains("UTF-8"), "{err}");
    let err = String::from_bytes_owned(&bad).unwrap_err();
    assert!(matches!(err, Error::Utf8(_)), "{err:?}");
}

// --- unit and bool ---------------------------------------------------------

#[test]
fn unit_accepts_any_input() {
    dec::<()>(b"");
    dec::<()>(b"ignored");
}

#[test]
fn bool_is_one_byte() {
    assert_eq!(enc(true), [1]);
    assert_eq!(enc(false), [0]);
    assert!(dec::<bool>(&[1]));
    assert!(!dec::<bool>(&[0]));
    assert!(dec::<bool>(&[7]), "any non-zero byte is true");
    for bad in [&[][..], &[1, 0][..]] {
        let err = bool::from_bytes_owned(bad).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Length {
                    type_name: "bool",
                    expected: 1,
                    ..
                }
            ),
            "{err:?}"
        );
    }
}

// --- numbers ---------------------------------------------------------------

#[test]
fn numbers_are_little_endian() {
    assert_eq!(enc(0x12u8), [0x12]);
    assert_eq!(enc(-1i8), [0xff]);
    assert_eq!(enc(0x1234u16), [0x34, 0x12]);
    assert_eq!(enc(-2i16), [0xfe, 0xff]);
    assert_eq!(enc(0x0102_0304u32), [0x04, 0x03, 0x02, 0x01]);
    assert_eq!(enc(-2i32), [0xfe, 0xff, 0xff, 0xff]);
    assert_eq!(
        enc(0x0102_0304_0506_0708u64),
        [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01]
    );
    assert_eq!(enc(i64::MIN), [0, 0, 0, 0, 0, 0, 0, 0x80]);
    assert_eq!(enc(1u128), {
        let mut b = [0u8; 16];
        b[0] = 1;
        b
    });
    assert_eq!(enc(1.0f32), [0x00, 0x00, 0x80, 0x3f]);
    assert_eq!(enc(-2.5f64), [0, 0, 0, 0, 0, 0, 0x04, 0xc0]);

    assert_eq!(dec::<u32>(&[0x04, 0x03, 0x02, 0x01]), 0x0102_0304);
    assert_eq!(dec::<i16>(&[0xfe, 0xff]), -2);
    assert_eq!(dec::<f32>(&[0x00, 0x00, 0x80, 0x3f]), 1.0);
}

macro_rules! round_trip_numbers {
    ($($t:ty),*) => {$(
        for v in [<$t>::MIN, <$t>::MAX, 0 as $t, 1 as $t] {
            let bytes = enc(v);
            assert_eq!(bytes.len(), std::mem::size_of::<$t>());
            assert_eq!(dec::<$t>(&bytes), v, stringify!($t));
        }
    )*};
}

#[test]
fn numbers_round_trip() {
    round_trip_numbers!(i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64);
    assert!(dec::<f64>(&enc(f64::NAN)).is_nan());
    assert_eq!(dec::<f32>(&enc(f32::INFINITY)), f32::INFINITY);
}

#[test]
fn numbers_need_exact_length() {
    let err = u32::from_bytes_owned(&[1, 2, 3]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Length {
                type_name: "u32",
                expected: 4,
                actual: 3
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "expected 4 bytes for u32, got 3");

    let err = f64::from_bytes_owned(&[0; 9]).unwrap_err();
    assert_eq!(err.to_string(), "expected 8 bytes for f64, got 9");
    assert!(u8::from_bytes_owned(&[]).is_err());
}

// --- JSON ------------------------------------------------------------------

#[test]
fn json_round_trips_nested_struct() {
    let value = sample();
    let bytes = enc(Json(value.clone()));
    assert_eq!(
        std::str::from_utf8(&bytes).unwrap(),
        r#"{"name":"plinth","score":1.5,"inner":{"id":42,"tags":["a","b"]},"maybe":null}"#
    );
    let Json(back) = dec::<Json<Outer>>(&bytes);
    assert_eq!(back, value);

    // Borrowed wrapper works as an input too.
    let wrapped = Json(value);
    assert_eq!(enc(&wrapped), bytes);
}

#[test]
fn json_round_trips_other_values() {
    let map: BTreeMap<String, Vec<i32>> = [("x".to_string(), vec![1, -2])].into();
    assert_eq!(
        dec::<Json<BTreeMap<String, Vec<i32>>>>(&enc(Json(&map))).0,
        map
    );
    assert_eq!(enc(Json("s")), br#""s""#);
    assert_eq!(dec::<Json<Option<u8>>>(b"null").0, None);
}

#[test]
fn bad_json_is_reported() {
    let err = Json::<Outer>::from_bytes_owned(b"{not json").unwrap_err();
    assert!(matches!(err, Error::Json(_)), "{err:?}");
    assert!(err.to_string().contains("JSON"), "{err}");

    // Valid JSON of the wrong shape is an error as well.
    let err = Json::<Outer>::from_bytes_owned(br#"{"name":"x"}"#).unwrap_err();
    assert!(err.to_string().contains("JSON"), "{err}");
    assert!(err.to_string().contains("score"), "{err}");
}

#[test]
fn json_encode_errors_are_reported() {
    // JSON object keys must be strings.
    let map: BTreeMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    let err = Json(map).to_bytes().unwrap_err();
    assert!(matches!(err, Error::Json(_)), "{err:?}");
}

// --- MessagePack -------------------------------------------------------------

#[test]
fn msgpack_round_trips_struct_as_map() {
    let value = sample();
    let bytes = enc(Msgpack(&value));
    // fixmap marker with the four fields of `Outer`.
    assert_eq!(bytes[0], 0x84);

    let as_map: BTreeMap<String, serde_json::Value> = rmp_serde::from_slice(&bytes).unwrap();
    assert_eq!(
        as_map.keys().collect::<Vec<_>>(),
        ["inner", "maybe", "name", "score"]
    );
    assert_eq!(as_map["inner"]["id"], 42);
    assert_eq!(as_map["name"], "plinth");

    let Msgpack(back) = dec::<Msgpack<Outer>>(&bytes);
    assert_eq!(back, value);
}

#[test]
fn msgpack_round_trips_other_values() {
    assert_eq!(dec::<Msgpack<u16>>(&enc(Msgpack(300u16))).0, 300);
    assert_eq!(dec::<Msgpack<String>>(&enc(Msgpack("hi"))).0, "hi");
    let list = vec![Some(1i64), None, Some(-5)];
    assert_eq!(
        dec::<Msgpack<Vec<Option<i64>>>>(&enc(Msgpack(&list))).0,
        list
    );
}

#[test]
fn bad_msgpack_is_reported() {
    // 0xc1 is the one byte MessagePack never uses.
    let err = Msgpack::<Outer>::from_bytes_owned(&[0xc1]).unwrap_err();
    assert!(matches!(err, Error::MsgpackDecode(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("MessagePack"), "{msg}");
    assert!(msg.contains("Outer"), "{msg}");

    // Well-formed MessagePack of the wrong type.
    let bytes = enc(Msgpack("just a string"));
    let err = Msgpack::<Outer>::from_bytes_owned(&bytes).unwrap_err();
    assert!(matches!(err, Error::MsgpackDecode(_)), "{err:?}");

    // Truncated input.
    let bytes = enc(Msgpack(sample()));
    assert!(Msgpack::<Outer>::from_bytes_owned(&bytes[..bytes.len() - 1]).is_err());
}

struct Unencodable;

impl Serialize for Unencodable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("refuses to serialize"))
    }
}

#[test]
fn msgpack_encode_errors_are_reported() {
    let err = Msgpack(Unencodable).to_bytes().unwrap_err();
    assert!(matches!(err, Error::MsgpackEncode(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("Unencodable"), "{msg}");
    assert!(msg.contains("refuses to serialize"), "{msg}");
}

// --- base64 ----------------------------------------------------------------

#[test]
fn base64_encodes_standard_padded() {
    assert_eq!(enc(Base64("hello")), b"aGVsbG8=");
    assert_eq!(enc(Base64(b"hello".to_vec())), b"aGVsbG8=");
    assert_eq!(enc(Base64(&b"hello"[..])), b"aGVsbG8=");
    assert_eq!(enc(Base64([0xfbu8, 0xff])), b"+/8=");
    assert_eq!(enc(Base64(String::new())), b"");
}

#[test]
fn base64_round_trips() {
    let data = vec![0u8, 1, 2, 250, 251, 252, 253, 254, 255];
    let Base64(back) = dec::<Base64<Vec<u8>>>(&enc(Base64(&data)));
    assert_eq!(back, data);
    let Base64(text) = dec::<Base64<String>>(&enc(Base64("plinth ✓")));
    assert_eq!(text, "plinth ✓");
}

#[test]
fn bad_base64_is_reported() {
    for bad in [&b"!!!!"[..], b"aGVsbG8", b"aGVsbG8=="] {
        let err = Base64::<Vec<u8>>::from_bytes_owned(bad).unwrap_err();
        assert!(matches!(err, Error::Base64(_)), "{bad:?}: {err:?}");
        assert!(err.to_string().contains("base64"), "{err}");
    }
    // Valid base64 whose payload is not UTF-8.
    let bytes = enc(Base64([0xffu8, 0xfe]));
    let err = Base64::<String>::from_bytes_owned(&bytes).unwrap_err();
    assert!(matches!(err, Error::Utf8(_)), "{err:?}");
}

// --- wrappers and errors ---------------------------------------------------

#[test]
fn wrapper_conveniences() {
    let mut j: Json<Vec<u8>> = vec![1].into();
    j.push(2); // DerefMut
    assert_eq!(j.len(), 2); // Deref
    assert_eq!(j.clone(), Json(vec![1, 2]));
    assert_eq!(j.into_inner(), vec![1, 2]);

    let m = Msgpack::from(5u8);
    assert_eq!(*m, 5);
    assert_eq!(m.into_inner(), 5);
    assert_eq!(Msgpack::<u8>::default(), Msgpack(0));

    let b: Base64<String> = Base64::default();
    assert!(b.is_empty());
    assert_eq!(format!("{:?}", Base64("x")), r#"Base64("x")"#);
}

#[test]
fn custom_errors_display_their_message() {
    let err = Error::custom("plug-in said no");
    assert!(matches!(err, Error::Custom(_)));
    assert_eq!(err.to_string(), "plug-in said no");
}
