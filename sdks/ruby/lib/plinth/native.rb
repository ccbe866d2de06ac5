# frozen_string_literal: true

require "ffi"

module Plinth
  # Raw bindings to libplinth's C API (plinth.h). Internal: use {Plinth::Plugin} and friends.
  #
  # The library is loaded from +ENV["PLINTH_LIB"]+ (a full path to libplinth.so) when set, else
  # by name ("plinth"), which the dynamic loader finds in its usual places: LD_LIBRARY_PATH,
  # /etc/ld.so.conf directories (e.g. /usr/local/lib after +ldconfig+), /usr/lib.
  # @api private
  module Native
    extend FFI::Library

    # Where the library is looked for, in order.
    def self.candidates
      explicit = ENV["PLINTH_LIB"]
      return [explicit] if explicit && !explicit.empty?

      ["plinth", "libplinth.so"]
    end

    begin
      ffi_lib candidates
    rescue LoadError => e
      raise LoadError, "plinth: cannot load libplinth (#{e.message}). Install it with " \
                       "`bash scripts/install-libplinth.sh PREFIX` and set PLINTH_LIB=PREFIX/lib/libplinth.so " \
                       "or LD_LIBRARY_PATH=PREFIX/lib"
    end

    ValType = enum(:val_type, [:i32, 0, :i64, :f32, :f64, :v128, :funcref, :externref])

    # Payload of an ExtismVal.
    class ValUnion < FFI::Union
      layout :i32, :int32, :i64, :int64, :f32, :float, :f64, :double
    end

    # ExtismVal: a type tag and a payload.
    class Val < FFI::Struct
      layout :t, :val_type, :v, ValUnion
    end

    callback :function_type, %i[pointer pointer uint64 pointer uint64 pointer], :void
    callback :free_user_data, [:pointer], :void
    callback :log_drain, %i[pointer uint64], :void

    attach_function :extism_version, [], :string
    attach_function :extism_function_new,
                    %i[string pointer uint64 pointer uint64 function_type pointer free_user_data], :pointer
    attach_function :extism_function_free, [:pointer], :void
    attach_function :extism_function_set_namespace, %i[pointer string], :void

    attach_function :extism_current_plugin_memory, [:pointer], :pointer
    attach_function :extism_current_plugin_memory_alloc, %i[pointer uint64], :uint64
    attach_function :extism_current_plugin_memory_length, %i[pointer uint64], :uint64
    attach_function :extism_current_plugin_memory_free, %i[pointer uint64], :void
    attach_function :extism_current_plugin_host_context, [:pointer], :pointer

    attach_function :extism_log_file, %i[string string], :bool
    attach_function :extism_log_custom, [:string], :bool
    attach_function :extism_log_drain, [:log_drain], :void

    # Creation compiles wasm and may take a while: release the GVL (blocking: true).
    attach_function :extism_compiled_plugin_new,
                    %i[pointer uint64 pointer uint64 bool pointer], :pointer, blocking: true
    attach_function :extism_compiled_plugin_free, [:pointer], :void
    attach_function :extism_plugin_new,
                    %i[pointer uint64 pointer uint64 bool pointer], :pointer, blocking: true
    attach_function :extism_plugin_new_with_fuel_limit,
                    %i[pointer uint64 pointer uint64 bool uint64 pointer], :pointer, blocking: true
    attach_function :extism_plugin_new_from_compiled, %i[pointer pointer], :pointer, blocking: true
    # From a path: libplinth reads the file (a manifest file's relative paths are relative to
    # its folder).
    attach_function :plinth_plugin_new_from_file,
                    %i[string pointer uint64 bool pointer], :pointer, blocking: true
    attach_function :plinth_plugin_new_from_file_with_fuel_limit,
                    %i[string pointer uint64 bool uint64 pointer], :pointer, blocking: true
    attach_function :plinth_compiled_plugin_new_from_file,
                    %i[string pointer uint64 bool pointer], :pointer, blocking: true
    # Precompiled artifacts, and calls on a fresh instance of a compiled plug-in. The buffers
    # they hand out are freed with plinth_buffer_free.
    attach_function :plinth_compile_artifact,
                    %i[pointer uint64 pointer uint64 pointer uint64 bool pointer pointer], :pointer, blocking: true
    attach_function :plinth_compiled_plugin_new_from_artifact,
                    %i[pointer uint64 pointer uint64 pointer uint64 bool pointer], :pointer, blocking: true
    attach_function :plinth_compiled_plugin_is_precompiled, [:pointer], :bool
    attach_function :plinth_compiled_plugin_call_fresh_with_host_context,
                    %i[pointer pointer pointer uint64 pointer pointer pointer pointer], :int32, blocking: true
    attach_function :plinth_buffer_free, [:pointer], :void
    attach_function :plinth_plugin_new_error_kind, [:pointer], :int32
    attach_function :extism_plugin_new_error_free, [:pointer], :void
    attach_function :extism_plugin_free, [:pointer], :void
    attach_function :extism_plugin_allow_http_response_headers, [:pointer], :void
    attach_function :extism_plugin_cancel_handle, [:pointer], :pointer
    attach_function :extism_plugin_cancel, [:pointer], :bool
    attach_function :extism_plugin_config, %i[pointer pointer uint64], :bool
    attach_function :extism_plugin_function_exists, %i[pointer string], :bool
    # Calls run guest code for as long as it likes: the GVL is released so other Ruby threads
    # (e.g. one that cancels the call) keep running. Host function callbacks take it back.
    attach_function :extism_plugin_call_with_host_context,
                    %i[pointer pointer pointer uint64 pointer], :int32, blocking: true
    # Async calls: they return at once; libplinth calls +call_done+ once, on one of its worker
    # threads (ffi runs the Ruby callback on its callback thread). Async host functions get a
    # completion, which any thread finishes.
    callback :call_done, %i[pointer int32 int32 pointer uint64 pointer], :void
    callback :async_function, %i[pointer pointer uint64 pointer pointer], :void
    attach_function :plinth_plugin_call_async, %i[pointer pointer pointer uint64 call_done pointer], :bool
    attach_function :plinth_function_new_async,
                    %i[string pointer uint64 pointer uint64 async_function pointer free_user_data], :pointer
    attach_function :plinth_completion_return, %i[pointer pointer uint64], :bool
    attach_function :plinth_completion_return_bytes, %i[pointer pointer uint64], :bool
    attach_function :plinth_completion_fail, %i[pointer string], :bool
    attach_function :plinth_completion_is_waiting, [:pointer], :bool
    # Streaming calls: libplinth calls the read and write callbacks on the calling thread
    # while the call runs (ffi takes the GVL back for them).
    callback :stream_read, %i[pointer pointer uint64], :int64
    callback :stream_write, %i[pointer pointer uint64], :int64

    # What went through a streaming call (PlinthStreamStats).
    class StreamStats < FFI::Struct
      layout :input_bytes, :uint64, :output_bytes, :uint64
    end

    attach_function :plinth_plugin_call_stream_with_host_context,
                    %i[pointer pointer stream_read stream_write pointer pointer pointer], :int32, blocking: true
    attach_function :plinth_plugin_set_output_limit, %i[pointer uint64], :bool
    attach_function :extism_plugin_error, [:pointer], :pointer
    attach_function :plinth_plugin_error_kind, [:pointer], :int32
    attach_function :plinth_error_kind_name, [:int32], :string
    attach_function :extism_plugin_output_length, [:pointer], :uint64
    attach_function :extism_plugin_output_data, [:pointer], :pointer
    attach_function :extism_plugin_reset, [:pointer], :bool
    attach_function :extism_plugin_id, [:pointer], :pointer

    # Copies a Ruby string into native memory (a GVL-free call must not point into a Ruby
    # string, which GC compaction may move). Returns [pointer, length].
    def self.buffer(bytes)
      bytes = bytes.b
      return [nil, 0] if bytes.empty?

      mem = FFI::MemoryPointer.new(:uint8, bytes.bytesize)
      mem.put_bytes(0, bytes)
      [mem, bytes.bytesize]
    end

    # The Plinth::Error of a failed creation (or fresh call, with its return code): reads the
    # errmsg it set (with its kind) and frees it.
    def self.creation_error(errp, fallback, code: -1)
      ptr = errp.read_pointer
      return Error.new(fallback, code: code) if ptr.null?

      kind = plinth_plugin_new_error_kind(ptr)
      msg = ptr.read_string.force_encoding(Encoding::UTF_8)
      extism_plugin_new_error_free(ptr)
      Error.new(msg, code: code, kind: kind)
    end

    # Copies a buffer libplinth handed out (+ptr+, +len+ bytes) into a binary String and
    # frees it.
    def self.take_buffer(ptr, len)
      return "".b if ptr.null?

      begin
        len.zero? ? "".b : ptr.get_bytes(0, len)
      ensure
        plinth_buffer_free(ptr)
      end
    end
  end

  # Every kind of failure, number to name (+{1 => :manifest, ..., 7 => :trap, ...}+): the
  # values of {Error#kind_code} and {Error#kind}, the same in every Plinth SDK. Read from
  # libplinth.
  ERROR_KINDS = (1..).lazy
                     .map { |n| [n, Native.plinth_error_kind_name(n)] }
                     .take_while { |_, name| name }
                     .to_h { |n, name| [n, name.to_sym] }
                     .freeze
end
