# frozen_string_literal: true

module Plinth
  # The plug-in that called a host function, given to the {HostFunction} block. It reads and
  # writes the plug-in's Extism memory, where strings and bytes travel as handles (offsets).
  #
  # Valid only while the host function runs: using it afterwards raises {Plinth::Error}.
  class CurrentPlugin
    # @api private
    def initialize(ptr, frame)
      @ptr = ptr
      @frame = frame
    end

    # The +host_context:+ given to {Plugin#call} (any Ruby object), or nil.
    # @return [Object, nil]
    def host_context
      check!
      @frame&.host_context
    end

    # Allocates +n+ bytes of the plug-in's memory.
    # @param n [Integer]
    # @return [Integer] the handle
    # @raise [Plinth::Error] when the plug-in's memory budget is used up
    def alloc(n)
      check!
      handle = Native.extism_current_plugin_memory_alloc(@ptr, Integer(n))
      raise Error.new("cannot allocate #{n} bytes in the plug-in's memory", kind: :memory) if handle.zero? && n.positive?

      handle
    end

    # Frees the block at +handle+.
    # @param handle [Integer]
    # @return [nil]
    def free(handle)
      check!
      Native.extism_current_plugin_memory_free(@ptr, Integer(handle))
      nil
    end

    # Length of the block at +handle+ (0 when there is none).
    # @param handle [Integer]
    # @return [Integer]
    def length(handle)
      check!
      Native.extism_current_plugin_memory_length(@ptr, Integer(handle))
    end

    # The bytes of the block at +handle+.
    # @param handle [Integer]
    # @return [String] binary (ASCII-8BIT)
    def read_bytes(handle)
      n = length(handle)
      return "".b if n.zero?

      Native.extism_current_plugin_memory(@ptr).get_bytes(Integer(handle), n)
    end

    # The block at +handle+ as a UTF-8 string.
    # @param handle [Integer]
    # @return [String]
    def read_string(handle)
      read_bytes(handle).force_encoding(Encoding::UTF_8)
    end

    # Copies +bytes+ into a new block of the plug-in's memory.
    # @param bytes [String]
    # @return [Integer] the handle, to return to the plug-in through an output
    def write_bytes(bytes)
      bytes = bytes.to_s.b
      handle = alloc(bytes.bytesize)
      Native.extism_current_plugin_memory(@ptr).put_bytes(handle, bytes) unless bytes.empty?
      handle
    end
    alias write_string write_bytes

    # @api private
    def invalidate!
      @ptr = nil
    end

    private

    def check!
      raise Error, "CurrentPlugin used outside of its host function call" unless @ptr
    end
  end
end
