package plinth

// Manifest describes a plug-in: its wasm modules and what it may use. It marshals to the
// Extism manifest JSON that libplinth reads; zero values are left out and take libplinth's
// defaults.
type Manifest struct {
	// Wasm lists the plug-in's modules. The one named "main" (or the last one) is the one
	// whose exports are called; the others satisfy its imports.
	Wasm []Wasm `json:"wasm"`
	// Memory sets memory limits; nil keeps the defaults.
	Memory *MemoryOptions `json:"memory,omitempty"`
	// Config is the initial config, read by the plug-in with config_get.
	Config map[string]string `json:"config,omitempty"`
	// AllowedHosts are the hosts (globs such as "*.example.com") the plug-in may reach
	// over HTTP.
	AllowedHosts []string `json:"allowed_hosts,omitempty"`
	// AllowedPaths maps host paths to guest paths, mounted as WASI preopens. A host path
	// prefixed with "ro:" is mounted read-only.
	AllowedPaths map[string]string `json:"allowed_paths,omitempty"`
	// TimeoutMs is a wall-clock limit for each call, in milliseconds; 0 means none.
	TimeoutMs uint64 `json:"timeout_ms,omitempty"`
}

// Wasm is one module of a manifest: set exactly one of Path, Data or URL.
type Wasm struct {
	// Path of a .wasm or .wat file.
	Path string `json:"path,omitempty"`
	// Data is the module itself (marshalled as base64).
	Data []byte `json:"data,omitempty"`
	// URL to download the module from, with optional Headers and Method (GET by default).
	URL     string            `json:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Method  string            `json:"method,omitempty"`
	// Name of the module, for imports between modules; "main" is the entry module.
	Name string `json:"name,omitempty"`
	// Hash is the expected SHA-256 of the module, in hex; loading fails on a mismatch.
	Hash string `json:"hash,omitempty"`
}

// MemoryOptions are a manifest's memory limits.
type MemoryOptions struct {
	// MaxPages caps the plug-in's memory, in 64 KiB pages: linear memory plus its Extism
	// memory (inputs, outputs, vars).
	MaxPages uint32 `json:"max_pages,omitempty"`
	// MaxHTTPResponseBytes caps the size of an HTTP response body (default 50 MiB).
	MaxHTTPResponseBytes uint64 `json:"max_http_response_bytes,omitempty"`
	// MaxVarBytes caps the total size of the plug-in's vars (default 1 MiB).
	MaxVarBytes uint64 `json:"max_var_bytes,omitempty"`
}

// WasmFile is a manifest module read from a file.
func WasmFile(path string) Wasm { return Wasm{Path: path} }

// WasmData is a manifest module given inline.
func WasmData(data []byte) Wasm { return Wasm{Data: data} }

// WasmURL is a manifest module downloaded with a GET request.
func WasmURL(url string) Wasm { return Wasm{URL: url} }
