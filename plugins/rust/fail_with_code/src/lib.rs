//! Always fails: shows how a plug-in reports its own return code and message.

use plinth_pdk::*;

#[plugin_fn]
pub fn fail_with_code() -> FnResult<()> {
    Err(WithReturnCode::new(Error::msg("custom failure"), 42))
}
