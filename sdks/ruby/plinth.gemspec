# frozen_string_literal: true

require_relative "lib/plinth/version"

Gem::Specification.new do |s|
  s.name = "plinth"
  s.version = Plinth::VERSION
  s.summary = "Run WebAssembly plug-ins (Extism ABI) from Ruby on libplinth"
  s.description = "A Ruby host SDK for Plinth: load wasm/WAT plug-ins or manifests, call them, " \
                  "give them Ruby host functions, and limit their time, memory and fuel. " \
                  "Binds libplinth (libextism-compatible C API) through ruby-ffi."
  s.authors = ["Plinth developers"]
  s.license = "Apache-2.0"
  s.files = Dir["lib/**/*.rb"] + ["README.md"]
  s.require_paths = ["lib"]
  s.required_ruby_version = ">= 3.0"
  s.add_runtime_dependency "ffi", "~> 1.15"
  s.homepage = "https://example.invalid/plinth"
  s.requirements << "libplinth (scripts/install-libplinth.sh); set PLINTH_LIB or LD_LIBRARY_PATH"
  s.metadata["rubygems_mfa_required"] = "true"
end
