//! Failing exports: `fail` returns an error (extism-pdk reports code -1), `fail_with_code`
//! returns custom code 7, and `succeed` is the control.
use extism_pdk::*;

#[plugin_fn]
pub fn fail(input: String) -> FnResult<String> {
    Err(Error::msg(format!("failed on purpose: {input}")).into())
}

#[plugin_fn]
pub fn fail_with_code(input: String) -> FnResult<String> {
    Err(WithReturnCode::new(
        Error::msg(format!("failed with code 7: {input}")),
        7,
    ))
}

#[plugin_fn]
pub fn succeed(input: String) -> FnResult<String> {
    Ok(format!("ok: {input}"))
}
