//! GETs the URL given as input through the host and outputs the response body. A non-2xx
//! status fails the call, with the status as the return code.

use plinth_pdk::*;

#[plugin_fn]
pub fn http_get(url: String) -> FnResult<Memory> {
    let url = url.trim();
    info!("GET {url}");
    let res = http::request::<()>(&HttpRequest::new(url), None)?;
    let status = res.status_code();
    if !(200..300).contains(&status) {
        return Err(WithReturnCode::new(
            Error::msg(format!("GET {url} returned HTTP status {status}")),
            i32::from(status),
        ));
    }
    // The body is already in Extism memory: hand it over as the output, no copy.
    Ok(res.into_memory())
}
