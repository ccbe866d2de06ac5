//! HTTP through the host: `http_get` outputs the body of a GET of the URL given as input;
//! `http_status` outputs only the status code, as text.
use extism_pdk::*;

#[plugin_fn]
pub fn http_get(url: String) -> FnResult<Memory> {
    let res = http::request::<()>(&HttpRequest::new(url), None)?;
    Ok(res.into_memory())
}

#[plugin_fn]
pub fn http_status(url: String) -> FnResult<String> {
    let res = http::request::<()>(&HttpRequest::new(url), None)?;
    Ok(res.status_code().to_string())
}
