# frozen_string_literal: true

require "stringio"

module Plinth
  # What went through a streaming call ({Plugin#call_stream}): the bytes of input the plug-in
  # was given and the bytes written to the output.
  StreamStats = Struct.new(:input_bytes, :output_bytes)

  class Plugin
    # The most a streaming call may write, for "no limit".
    NO_OUTPUT_LIMIT = (1 << 64) - 1
    private_constant :NO_OUTPUT_LIMIT

    # Calls an exported function with +input+ as its input stream and +output+ as its output
    # stream. A plug-in that streams (the Plinth PDKs' input and output streams, or
    # +plinth:host/env+ +stream_read+/+stream_write+) reads +input+ a chunk at a time as it
    # asks, and each chunk it writes is written to +output+ (and flushed) before its write
    # returns: output comes out while input still goes in, and memory stays bounded. A
    # plug-in that does not stream gets all of +input+ first (up to what its memory can hold)
    # and its output is written at the end.
    #
    #   File.open("big.log", "rb") { |f| plugin.call_stream("grep", f, $stdout) }
    #
    # The GVL is released while the plug-in runs and taken back for each read and write.
    # @param name [String, Symbol] the export
    # @param input [IO, StringIO, #readpartial, #read, String, nil] read with +readpartial+
    #   when it has it (a pipe gives what it has), else +read(n)+; a String is the whole
    #   input, nil an empty one
    # @param output [IO, StringIO, #write, nil] written with +write+ (and +flush+ when it has
    #   it); nil discards the output
    # @param host_context [Object] handed to host functions as {CurrentPlugin#host_context}
    # @return [StreamStats]
    # @raise [Plinth::Error] of kind +:stream+ when +input+ or +output+ raised (that exception
    #   is the error's +cause+), the output went over {#output_limit=}, or the input is too
    #   large for a plug-in that does not stream; other kinds as for {#call}
    def call_stream(name, input, output, host_context: nil)
      input = StringIO.new(input.to_str.b) if input.respond_to?(:to_str)
      func = FFI::MemoryPointer.from_string(name.to_s)
      stats = Native::StreamStats.new
      streams = StreamCallbacks.new(input, output)
      with_ptr do |ptr|
        CallFrame.open(host_context) do |frame, id|
          rc = Native.plinth_plugin_call_stream_with_host_context(
            ptr, func, streams.reader, streams.writer, nil, FFI::Pointer.new(id), stats
          )
          if frame.error
            e = frame.error
            msg = "host function #{frame.error_function} raised #{e.class}: #{e.message}"
            msg += " (then the call failed: #{last_error(ptr)})" unless rc.zero?
            raise Error.new(msg, code: -1, kind: :host_function), cause: e
          end
          unless rc.zero?
            err, cause = streams.failure(last_error(ptr) || "streaming call of #{name} failed", rc, last_kind(ptr))
            raise err, cause: cause
          end

          StreamStats.new(stats[:input_bytes], stats[:output_bytes])
        end
      end
    end

    # Caps what one streaming call ({#call_stream}) may write: a write that would go over
    # fails the call with a {Plinth::Error} of kind +:stream+, after the bytes before it were
    # written. nil (the default) is no cap. Classic calls are bounded by the plug-in's memory.
    # @param bytes [Integer, nil]
    def output_limit=(bytes)
      limit = bytes.nil? ? NO_OUTPUT_LIMIT : Integer(bytes)
      raise ArgumentError, "output_limit must be between 0 and 2**64-1, or nil" unless limit.between?(0, NO_OUTPUT_LIMIT)

      with_ptr { |ptr| Native.plinth_plugin_set_output_limit(ptr, limit) }
    end
  end

  # The read and write callbacks of one streaming call, and the exceptions they caught.
  # Exceptions must not unwind through libplinth: each becomes a failed read or write (-1).
  # @api private
  class StreamCallbacks
    attr_reader :reader, :writer

    def initialize(input, output)
      @input = input
      @output = output
      @read_error = nil
      @write_error = nil
      @reader = FFI::Function.new(:int64, %i[pointer pointer uint64]) { |_, buf, len| read(buf, len) }
      @writer = FFI::Function.new(:int64, %i[pointer pointer uint64]) { |_, buf, len| write(buf, len) }
    end

    # The Plinth::Error of a failed call and its cause: the exception of the input or output
    # that failed the stream (also named in the message), else nil.
    def failure(message, code, kind)
      cause = @read_error || @write_error
      if cause && Error.kind_number(kind) == Error.kind_number(:stream)
        side = @read_error ? "input" : "output"
        message = "#{message}; the #{side} raised #{cause.class}: #{cause.message}"
      else
        cause = nil
      end
      [Error.new(message, code: code, kind: kind), cause]
    end

    private

    def read(buf, len)
      return -1 if @read_error
      return 0 if @input.nil?

      chunk = next_chunk(len)
      return 0 if chunk.nil? || chunk.empty?
      if chunk.bytesize > len
        raise Error.new("the input gave #{chunk.bytesize} bytes when #{len} were asked for")
      end

      buf.put_bytes(0, chunk)
      chunk.bytesize
    rescue Exception => e # rubocop:disable Lint/RescueException -- nothing may unwind into C
      @read_error = e
      -1
    end

    def next_chunk(len)
      if @input.respond_to?(:readpartial)
        @input.readpartial(len)
      else
        @input.read(len)
      end
    rescue EOFError
      nil
    end

    def write(buf, len)
      return -1 if @write_error
      return 0 if @output.nil?

      @output.write(buf.get_bytes(0, len))
      @output.flush if @output.respond_to?(:flush)
      0
    rescue Exception => e # rubocop:disable Lint/RescueException -- nothing may unwind into C
      @write_error = e
      -1
    end
  end
end
