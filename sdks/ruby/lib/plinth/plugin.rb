# frozen_string_literal: true

require "json"
require "pathname"

module Plinth
  # A loaded plug-in: one wasm instance with its Extism memory, config and vars.
  #
  #   plugin = Plinth::Plugin.new(File.binread("count_vowels.wasm"))
  #   plugin.call("count_vowels", "Hello")              # => "{\"count\":2,...}"
  #   plugin.call_json("count_vowels", "Hello")          # JSON in and out (see #call_json)
  #   plugin.close
  #
  # Threads: a plug-in may be used from any thread; its calls take turns (libplinth serializes
  # them, and this class holds a per-plug-in Mutex so a call's output is read before the next
  # call replaces it). {#call} releases the GVL while the plug-in runs, so other Ruby threads
  # keep running; Ruby host functions take the GVL back while they run. A host function that
  # calls back into the plug-in that is calling it gets a {Plinth::Error}, not a deadlock.
  # Guest code cannot be stopped by Thread#raise, Timeout.timeout or Ctrl-C: use the manifest's
  # +timeout_ms+, a +fuel_limit+ or a {#cancel_handle}.
  class Plugin
    NO_INPUT = Object.new.freeze
    private_constant :NO_INPUT

    # Creates a plug-in, yields it and closes it when the block ends (returns the block's
    # value). Without a block, returns the plug-in like {#initialize}.
    # @return [Object]
    def self.open(source, **opts)
      plugin = new(source, **opts)
      return plugin unless block_given?

      begin
        yield plugin
      ensure
        plugin.close
      end
    end

    # Loads a plug-in from a file: a wasm binary, WAT text or a manifest (JSON or TOML), told
    # apart by content. libplinth reads the file: in a manifest file, relative +wasm+ paths and
    # +allowed_paths+ are relative to the manifest's folder, not to the working directory (as
    # in every Plinth SDK and the +plinth+ command). A file that cannot be read raises
    # {Plinth::Error} of kind +:manifest+ whose +cause+ is the OS error (e.g. Errno::ENOENT).
    # @param path [String, Pathname]
    # @return [Plugin]
    def self.from_file(path, **opts, &block)
      open(Pathname(path.respond_to?(:to_path) ? path.to_path : path.to_s), **opts, &block)
    end

    # @param source [String, Hash, Pathname, File] the plug-in: a String holds wasm or WAT
    #   bytes (or manifest JSON); a Hash is a manifest, e.g.
    #   +{wasm: [{path: "x.wasm"}], config: {"k" => "v"}, memory: {max_pages: 4},
    #   timeout_ms: 100, allowed_hosts: ["*.example.com"], allowed_paths: {"ro:./data" => "/data"}}+
    #   (+data:+ entries take raw bytes); a Pathname or File is loaded from its path, as
    #   {.from_file} does.
    # @param wasi [Boolean] give the plug-in WASI (off by default)
    # @param functions [Array<HostFunction>] host functions the plug-in may import
    # @param fuel_limit [Integer, nil] most fuel units each call may use
    # @raise [Plinth::Error] when the plug-in cannot be loaded (bad wasm, manifest, missing import)
    def initialize(source, wasi: false, functions: [], fuel_limit: nil)
      functions = Array(functions)
      fns = Plugin.function_array(functions)
      errp = FFI::MemoryPointer.new(:pointer)
      fuel = fuel_limit && Integer(fuel_limit)
      path = Source.path(source)
      ptr = if path
              new_from_file(path, fns, functions.size, wasi, fuel, errp)
            else
              data, len = Native.buffer(Source.bytes(source))
              if fuel
                Native.extism_plugin_new_with_fuel_limit(data, len, fns, functions.size, wasi, fuel, errp)
              else
                Native.extism_plugin_new(data, len, fns, functions.size, wasi, errp)
              end
            end
      Plugin.raise_creation_error(errp, "could not load the plug-in", path) if ptr.null?

      setup(ptr, functions)
    end

    # @api private: raises the {Plinth::Error} of a failed creation; for a path, the OS error
    # of a file that cannot be opened is its cause.
    def self.raise_creation_error(errp, fallback, path = nil)
      err = Native.creation_error(errp, fallback)
      raise err, cause: (path && err.kind == :manifest ? Source.open_error(path) : nil)
    end

    # @api private
    def self.function_array(functions)
      functions.each do |f|
        raise TypeError, "functions must be Plinth::HostFunction (got #{f.class})" unless f.is_a?(HostFunction)
      end
      mem = FFI::MemoryPointer.new(:pointer, [functions.size, 1].max)
      mem.write_array_of_pointer(functions.map(&:native_ptr)) unless functions.empty?
      mem
    end

    # @api private: wraps a native plug-in (from {CompiledPlugin#instance}).
    def self.wrap(ptr, functions)
      allocate.tap { |p| p.send(:setup, ptr, functions) }
    end

    # @api private: the finalizer. Captures the pointer and the host functions (keeping their
    # callbacks alive until the native plug-in is gone), never the Plugin itself.
    def self.releaser(ptr, functions)
      proc { Native.extism_plugin_free(ptr) if functions }
    end

    # The plug-in's id, a UUID string.
    # @return [String]
    attr_reader :id

    # Host functions this plug-in was made with.
    # @return [Array<HostFunction>]
    attr_reader :functions

    # Calls an exported function.
    # @param name [String, Symbol] the export
    # @param input [String, nil] bytes passed to the plug-in
    # @param host_context [Object] handed to host functions as {CurrentPlugin#host_context}
    # @return [String] the output, binary (ASCII-8BIT); use +force_encoding+ for text
    # @raise [Plinth::Error] with {Error#kind} and {Error#code}: the plug-in's own code, 134
    #   for a trap, or -1
    def call(name, input = nil, host_context: nil)
      input = input.nil? ? "" : input.to_str
      data, len = Native.buffer(input)
      func = FFI::MemoryPointer.from_string(name.to_s)
      with_ptr do |ptr|
        CallFrame.open(host_context) do |frame, id|
          rc = Native.extism_plugin_call_with_host_context(ptr, func, data, len, FFI::Pointer.new(id))
          if frame.error
            e = frame.error
            msg = "host function #{frame.error_function} raised #{e.class}: #{e.message}"
            msg += " (then the call failed: #{last_error(ptr)})" unless rc.zero?
            raise Error.new(msg, code: -1, kind: :host_function), cause: e
          end
          # A plug-in that sets an error and returns 0 gets rc 0 (as from libextism), with
          # the message in extism_plugin_error: that is a failure too.
          message = last_error(ptr)
          if !rc.zero? || message
            raise Error.new(message || "call of #{name} failed", code: rc, kind: last_kind(ptr))
          end

          n = Native.extism_plugin_output_length(ptr)
          n.zero? ? "".b : Native.extism_plugin_output_data(ptr).get_bytes(0, n)
        end
      end
    end

    # Calls a function with +input+ encoded as JSON and parses its JSON output.
    # @param name [String, Symbol]
    # The input may also be given as keywords:
    # +call_json("before_checkout_finalize", cart_total: 12_000, is_new_customer: true)+.
    # @param input [Object] anything JSON.generate accepts
    # @return [Object] usually a Hash with String keys
    def call_json(name, input = NO_INPUT, host_context: nil, **fields)
      input = fields if NO_INPUT.equal?(input)
      out = call(name, JSON.generate(input), host_context: host_context)
      JSON.parse(out.force_encoding(Encoding::UTF_8))
    end

    # Whether the plug-in exports a callable function of that name.
    # @return [Boolean]
    def function_exists?(name)
      with_ptr { |ptr| Native.extism_plugin_function_exists(ptr, name.to_s) }
    end

    # Updates the plug-in's config: values become strings, a nil value removes the key.
    # @param config [Hash]
    # @return [self]
    def update_config(config)
      json = JSON.generate(config.to_h { |k, v| [k.to_s, v.nil? ? nil : v.to_s] })
      data, len = Native.buffer(json)
      with_ptr do |ptr|
        unless Native.extism_plugin_config(ptr, data, len)
          raise Error.new(last_error(ptr) || "config update failed", kind: last_kind(ptr))
        end
      end
      self
    end

    # Releases the plug-in's Extism memory (the last output included).
    # @return [Boolean]
    def reset
      with_ptr { |ptr| Native.extism_plugin_reset(ptr) }
    end

    # Lets the plug-in read the headers of its HTTP responses.
    # @return [self]
    def allow_http_response_headers!
      with_ptr { |ptr| Native.extism_plugin_allow_http_response_headers(ptr) }
      self
    end

    # A handle that cancels this plug-in's running call from any thread.
    # @return [CancelHandle]
    def cancel_handle
      raise Error.new("plug-in is closed", kind: :closed) if @closed

      CancelHandle.new(self)
    end

    # Frees the plug-in. Idempotent; waits for a call running in another thread. Later calls
    # raise {Plinth::Error}.
    # @return [nil]
    def close
      return nil if @closed
      if @lock.owned?
        raise Error.new("a plug-in cannot be closed from its own host function", kind: :reentrant)
      end

      @lock.synchronize do
        @state.synchronize do
          return nil if @closed

          @closed = true
          Native.extism_plugin_free(@ptr)
          @ptr = nil
        end
      end
      ObjectSpace.undefine_finalizer(self)
      nil
    end

    # @return [Boolean]
    def closed?
      @closed
    end

    def inspect
      "#<Plinth::Plugin #{@id}#{' closed' if @closed}>"
    end

    # @api private: used by {CancelHandle#cancel}.
    def cancel_running_call
      @state.synchronize do
        return false if @closed

        Native.extism_plugin_cancel(@cancel)
      end
    end

    private

    def setup(ptr, functions)
      @ptr = ptr
      @functions = functions.dup.freeze
      @closed = false
      @lock = Mutex.new  # one call (and its output read) at a time
      @state = Mutex.new # guards freeing against a concurrent cancel
      @cancel = Native.extism_plugin_cancel_handle(ptr)
      @id = format_id(Native.extism_plugin_id(ptr))
      ObjectSpace.define_finalizer(self, Plugin.releaser(ptr, @functions))
    end

    def format_id(ptr)
      return nil if ptr.null?

      ptr.get_bytes(0, 16).unpack1("H*").sub(/\A(.{8})(.{4})(.{4})(.{4})(.{12})\z/, '\1-\2-\3-\4-\5')
    end

    def with_ptr
      if @lock.owned?
        raise Error.new("re-entrant use of a plug-in from its own host function is refused",
                        code: -1, kind: :reentrant)
      end

      @lock.synchronize do
        raise Error.new("plug-in is closed", kind: :closed) if @closed

        yield @ptr
      end
    end

    def new_from_file(path, fns, n_fns, wasi, fuel, errp)
      if fuel
        Native.plinth_plugin_new_from_file_with_fuel_limit(path, fns, n_fns, wasi, fuel, errp)
      else
        Native.plinth_plugin_new_from_file(path, fns, n_fns, wasi, errp)
      end
    end

    def last_error(ptr)
      err = Native.extism_plugin_error(ptr)
      err.null? ? nil : err.read_string.force_encoding(Encoding::UTF_8)
    end

    # The kind of the error extism_plugin_error shows (+:other+ when it shows none).
    def last_kind(ptr)
      Native.plinth_plugin_error_kind(ptr)
    end
  end

  # Cancels the running call of one plug-in, from any thread ({Plugin#cancel_handle}).
  # The cancelled call raises {Plinth::Error} (a message mentioning "cancelled").
  class CancelHandle
    # @api private
    def initialize(plugin)
      @plugin = plugin
    end

    # Cancels the plug-in's running call.
    # @return [Boolean] false once the plug-in is closed
    def cancel
      @plugin.cancel_running_call
    end
  end

  # A plug-in compiled once, from which instances are made cheaply without compiling again.
  # May be shared by threads freely.
  #
  #   compiled = Plinth::CompiledPlugin.new(File.binread("count_vowels.wasm"))
  #   plugin = compiled.instance   # a Plinth::Plugin
  #   compiled.call_fresh("count_vowels", "Hello")   # on an instance of its own
  #
  # A precompiled artifact skips compiling at load time:
  #
  #   artifact = Plinth::CompiledPlugin.compile_artifact(File.binread("count_vowels.wasm"), key)
  #   compiled = Plinth::CompiledPlugin.from_artifact(artifact, key)
  class CompiledPlugin
    # Compiles a plug-in ahead of time into a precompiled artifact signed with +key+, as
    # +plinth compile+ does; {.from_artifact} loads it without compiling.
    #
    # Whoever holds the key can make artifacts that a host holding it runs as native code:
    # keep it as private as the host's own binaries.
    # @param source [String, Hash] wasm or WAT bytes, or a manifest (with one module); read a
    #   file with File.binread
    # @param key [String] the secret key, at least 16 bytes (32 random bytes are best)
    # @param wasi [Boolean] WASI for the plug-in (checked as at load time)
    # @param functions [Array<HostFunction>] the host functions it imports (checked as at load
    #   time; the artifact does not hold them)
    # @return [String] the artifact, binary
    # @raise [Plinth::Error] kind +:artifact+ for a key shorter than 16 bytes; the load kinds
    #   (+:compile+, +:link+, ...) for a plug-in that does not load
    def self.compile_artifact(source, key, wasi: false, functions: [])
      if Source.path(source)
        raise TypeError, "compile_artifact takes wasm/WAT bytes or a manifest Hash; read the file with File.binread"
      end

      functions = Array(functions)
      fns = Plugin.function_array(functions)
      data, len = Native.buffer(Source.bytes(source))
      key_data, key_len = Native.buffer(key.to_str)
      errp = FFI::MemoryPointer.new(:pointer)
      sizep = FFI::MemoryPointer.new(:uint64)
      ptr = Native.plinth_compile_artifact(data, len, key_data, key_len, fns, functions.size, wasi, sizep, errp)
      Plugin.raise_creation_error(errp, "could not compile the artifact") if ptr.null?

      Native.take_buffer(ptr, sizep.read_uint64)
    end

    # Loads a precompiled artifact (from {.compile_artifact} or +plinth compile+) without
    # compiling. Its signature must verify under +key+, the key it was made with: bytes that
    # are not an artifact, an artifact altered after it was made, or one signed with another
    # key raise {Plinth::Error} of kind +:artifact+, and nothing of it runs. An artifact made
    # by another libplinth version or with other settings is compiled from the wasm it holds
    # instead ({#precompiled?} is then false).
    # @param artifact [String] the artifact's bytes
    # @param key [String] the secret key it was signed with
    # @param wasi [Boolean] WASI for the plug-in
    # @param functions [Array<HostFunction>] host functions the plug-in imports
    # @return [CompiledPlugin]
    # @raise [Plinth::Error]
    def self.from_artifact(artifact, key, wasi: false, functions: [])
      allocate.tap { |c| c.send(:load_artifact, artifact.to_str, key.to_str, wasi, Array(functions)) }
    end

    # Same sources and options as {Plugin#initialize} (a Pathname or File loads from its path,
    # with {Plugin.from_file}'s rules), except +fuel_limit+.
    # @raise [Plinth::Error]
    def initialize(source, wasi: false, functions: [])
      @functions = Array(functions).dup.freeze
      fns = Plugin.function_array(@functions)
      errp = FFI::MemoryPointer.new(:pointer)
      path = Source.path(source)
      @ptr = if path
               Native.plinth_compiled_plugin_new_from_file(path, fns, @functions.size, wasi, errp)
             else
               data, len = Native.buffer(Source.bytes(source))
               Native.extism_compiled_plugin_new(data, len, fns, @functions.size, wasi, errp)
             end
      Plugin.raise_creation_error(errp, "could not compile the plug-in", path) if @ptr.null?

      setup
    end

    # Whether the plug-in runs native code from a precompiled artifact (false when it was
    # compiled, and once closed).
    # @return [Boolean]
    def precompiled?
      acquire { |ptr| Native.plinth_compiled_plugin_is_precompiled(ptr) }
    rescue Error
      false
    end

    # Calls an exported function on a fresh instance made for this call alone, then frees it:
    # nothing one call leaves behind (memory, globals, vars) is seen by the next, which
    # isolates requests or tenants from each other. A fresh instance costs microseconds
    # (libplinth pools instances). May be called from many threads at once; the GVL is
    # released while the plug-in runs.
    # @param name [String, Symbol] the export
    # @param input [String, nil] bytes passed to the plug-in
    # @param host_context [Object] handed to host functions as {CurrentPlugin#host_context}
    # @return [String] the output, binary (ASCII-8BIT)
    # @raise [Plinth::Error] as {Plugin#call} raises, except that a plug-in that sets an error
    #   and returns 0 gives code -1
    def call_fresh(name, input = nil, host_context: nil)
      input = input.nil? ? "" : input.to_str
      data, len = Native.buffer(input)
      func = FFI::MemoryPointer.from_string(name.to_s)
      outp = FFI::MemoryPointer.new(:pointer)
      lenp = FFI::MemoryPointer.new(:uint64)
      errp = FFI::MemoryPointer.new(:pointer)
      acquire do |ptr|
        CallFrame.open(host_context) do |frame, id|
          rc = Native.plinth_compiled_plugin_call_fresh_with_host_context(
            ptr, func, data, len, FFI::Pointer.new(id), outp, lenp, errp
          )
          out = Native.take_buffer(outp.read_pointer, lenp.read_uint64)
          err = rc.zero? ? nil : Native.creation_error(errp, "call of #{name} failed", code: rc)
          if frame.error
            e = frame.error
            msg = "host function #{frame.error_function} raised #{e.class}: #{e.message}"
            msg += " (then the call failed: #{err.message})" if err
            raise Error.new(msg, code: -1, kind: :host_function), cause: e
          end
          raise err if err

          out
        end
      end
    end

    # @api private
    def self.releaser(ptr, functions)
      proc { Native.extism_compiled_plugin_free(ptr) if functions }
    end

    # A new plug-in instance. With a block, yields it and closes it afterwards.
    # @return [Plugin]
    def instance
      plugin = acquire do |ptr|
        errp = FFI::MemoryPointer.new(:pointer)
        p = Native.extism_plugin_new_from_compiled(ptr, errp)
        Plugin.raise_creation_error(errp, "could not instantiate the plug-in") if p.null?

        Plugin.wrap(p, @functions)
      end
      return plugin unless block_given?

      begin
        yield plugin
      ensure
        plugin.close
      end
    end
    alias instantiate instance

    # Frees the compiled plug-in (idempotent); instances made from it stay usable.
    # @return [nil]
    def close
      @mutex.synchronize do
        return nil if @closed

        @closed = true
        @idle.wait(@mutex) while @users.positive?
      end
      Native.extism_compiled_plugin_free(@ptr)
      ObjectSpace.undefine_finalizer(self)
      nil
    end

    # @return [Boolean]
    def closed?
      @closed
    end

    private

    def load_artifact(artifact, key, wasi, functions)
      @functions = functions.dup.freeze
      fns = Plugin.function_array(@functions)
      data, len = Native.buffer(artifact)
      key_data, key_len = Native.buffer(key)
      errp = FFI::MemoryPointer.new(:pointer)
      @ptr = Native.plinth_compiled_plugin_new_from_artifact(data, len, key_data, key_len, fns, @functions.size,
                                                             wasi, errp)
      Plugin.raise_creation_error(errp, "could not load the artifact") if @ptr.null?

      setup
    end

    def setup
      @closed = false
      @users = 0
      @mutex = Mutex.new
      @idle = ConditionVariable.new
      ObjectSpace.define_finalizer(self, self.class.releaser(@ptr, @functions))
    end

    def acquire
      @mutex.synchronize do
        raise Error.new("compiled plug-in is closed", kind: :closed) if @closed

        @users += 1
      end
      begin
        yield @ptr
      ensure
        @mutex.synchronize do
          @users -= 1
          @idle.broadcast
        end
      end
    end
  end
end
