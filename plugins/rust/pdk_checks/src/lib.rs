//! Exercises the parts of the Rust PDK that the examples do not, for
//! tests/plugins/tests/rust_pdk.rs. Each check fails with a message saying what differed.

use plinth_pdk::*;
use serde::{Deserialize, Serialize};

/// Fails the call unless `got == want`.
macro_rules! check {
    ($got:expr, $want:expr) => {{
        let (got, want) = ($got, $want);
        if got != want {
            return Err(Error::msg(format!(
                "{} is {:?}, expected {:?}",
                stringify!($got),
                got,
                want
            ))
            .into());
        }
    }};
}

#[plugin_fn]
pub fn echo(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(input)
}

/// Output through a `Memory` the plug-in filled itself.
#[plugin_fn]
pub fn echo_memory(input: Vec<u8>) -> FnResult<Memory> {
    Ok(Memory::new(&input)?)
}

#[plugin_fn]
pub fn memory_api() -> FnResult<&'static str> {
    let m = Memory::from_bytes("0123456789abcdef!")?;
    check!(m.len(), 17);
    check!(Memory::find(m.offset()), Some(m));
    check!(m.to_string()?, "0123456789abcdef!");
    let mut head = [0u8; 10];
    m.load(&mut head);
    check!(&head, b"0123456789");
    m.store("ABCDEFGHIJ");
    check!(m.to_vec(), b"ABCDEFGHIJabcdef!".to_vec());
    check!(Memory::new(&7u32)?.to::<u32>()?, 7);
    check!(Memory::new(&"")?, Memory::null());
    m.free();
    check!(Memory::find(m.offset()), None);
    check!(Memory::find(0), None);
    Ok("ok")
}

#[plugin_fn]
pub fn vars() -> FnResult<&'static str> {
    check!(var::get::<String>("word")?, None);
    var::set("word", "hello")?;
    check!(var::get::<String>("word")?, Some("hello".to_string()));
    var::set("n", 41u32)?;
    check!(var::get::<u32>("n")?, Some(41));
    var::set("doc", Json(vec![1, 2, 3]))?;
    check!(
        var::get::<Json<Vec<i32>>>("doc")?.map(|j| j.0),
        Some(vec![1, 2, 3])
    );
    var::remove("word")?;
    check!(var::get::<String>("word")?, None);
    Ok("ok")
}

#[plugin_fn]
pub fn config_value(key: String) -> FnResult<String> {
    Ok(config::get(&key)?.unwrap_or_else(|| "<unset>".into()))
}

#[derive(Serialize, Deserialize)]
pub struct Pair {
    left: String,
    right: u32,
}

#[plugin_fn]
pub fn swap_msgpack(Msgpack(p): Msgpack<Pair>) -> FnResult<Msgpack<(u32, String)>> {
    Ok(Msgpack((p.right, p.left)))
}

/// Encoded through the derives, as extism-pdk plug-ins write it.
#[derive(Serialize, Deserialize, ToBytes, FromBytes)]
#[encoding(Json)]
pub struct Point {
    x: i32,
    y: i32,
}

#[plugin_fn]
pub fn flip(p: Point) -> FnResult<Point> {
    Ok(Point { x: p.y, y: p.x })
}

#[derive(Deserialize)]
pub struct Post {
    url: String,
    body: String,
}

#[derive(Serialize)]
pub struct Reply {
    status: u16,
    body: String,
    content_type: Option<String>,
}

#[plugin_fn]
pub fn post(Json(req): Json<Post>) -> FnResult<Json<Reply>> {
    let request = HttpRequest::new(req.url)
        .with_method("POST")
        .with_header("X-Test", "yes");
    let res = http::request(&request, Some(req.body))?;
    Ok(Json(Reply {
        status: res.status_code(),
        body: String::from_utf8(res.body())?,
        content_type: res.header("content-type").map(str::to_string),
    }))
}

#[plugin_fn]
pub fn log_level_name() -> FnResult<String> {
    trace!("trace line {}", 0);
    debug!("debug line {}", 1);
    info!("info line {}", 2);
    warn!("warn line {}", 3);
    error!("error line {}", 4);
    Ok(match log_level() {
        Some(level) => format!("{level:?}"),
        None => "off".to_string(),
    })
}

/// `?` on an error with context: the message keeps the chain.
#[plugin_fn]
pub fn context_chain() -> FnResult<()> {
    let parsed: Result<u32, _> = "x".parse::<u32>();
    let inner = Error::from(parsed.unwrap_err()).context("reading the count");
    Err(inner)?
}

#[host_fn("plinth:test")]
extern "ExtismHost" {
    fn add(a: u32, b: u32) -> u32;
    fn record(message: &str);
    fn raw() -> Memory;
    fn nothing() -> String;
}

#[plugin_fn]
pub fn host_calls() -> FnResult<String> {
    // SAFETY: the test host provides these functions with these signatures.
    unsafe {
        check!(add(2, 3)?, 5);
        record("recorded")?;
        check!(nothing()?, "");
        let m = raw()?;
        Ok(m.to_string()?)
    }
}
