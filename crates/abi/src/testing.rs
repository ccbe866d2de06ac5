//! Helpers the rewrites' unit tests share.

/// Each function body's operators of `wasm`, by their Debug names, in code-section order.
pub(crate) fn bodies(wasm: &[u8]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(wasm) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
            let ops = body.get_operators_reader().unwrap();
            out.push(
                ops.into_iter()
                    .map(|op| format!("{:?}", op.unwrap()))
                    .collect(),
            );
        }
    }
    out
}
