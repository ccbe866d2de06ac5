//! `prepare IN OUT [IN OUT]...`: writes what `plinth_abi::prepare` makes of each plug-in, the
//! bytes the native runtime compiles, so that other hosts (the web kernel's test) can compare.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || !args.len().is_multiple_of(2) {
        eprintln!("usage: prepare IN.wasm OUT.wasm [IN.wasm OUT.wasm]...");
        return ExitCode::from(2);
    }
    for pair in args.chunks(2) {
        let (input, output) = (&pair[0], &pair[1]);
        let wasm = match std::fs::read(input) {
            Ok(wasm) => wasm,
            Err(e) => {
                eprintln!("cannot read {input}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let prepared = match plinth_abi::prepare(&wasm) {
            Ok(prepared) => prepared,
            Err(e) => {
                eprintln!("{input}: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = std::fs::write(output, &prepared.wasm) {
            eprintln!("cannot write {output}: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
