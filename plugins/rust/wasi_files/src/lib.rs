//! Copies the file whose path is the input to the same path plus ".out", with plain std::fs
//! over WASI. Only preopened directories (the manifest's `allowed_paths`) are reachable.

use plinth_pdk::*;

#[plugin_fn]
pub fn copy_file(path: String) -> FnResult<String> {
    let from = path.trim();
    let to = format!("{from}.out");
    let data = std::fs::read(from).map_err(|e| Error::msg(format!("cannot read {from}: {e}")))?;
    std::fs::write(&to, &data).map_err(|e| Error::msg(format!("cannot write {to}: {e}")))?;
    info!("copied {} bytes from {from} to {to}", data.len());
    Ok(to)
}
