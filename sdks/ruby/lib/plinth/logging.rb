# frozen_string_literal: true

module Plinth
  class << self
    # libplinth's version, e.g. "0.1.0".
    # @return [String]
    def library_version
      Native.extism_version
    end

    # Sends Plinth's and plug-ins' logs at +level+ (trace, debug, info, warn, error) to a file
    # ("stdout"/"stderr" name the streams). Only the first logging setup of a process counts.
    # @return [Boolean] false when logging was already set up
    def log_file(path, level = "info")
      Native.extism_log_file(path.to_s, level.to_s)
    end

    # Buffers logs at +level+ until {log_drain} hands them out.
    # @return [Boolean]
    def log_custom(level = "info")
      Native.extism_log_custom(level.to_s)
    end

    # Yields each buffered log line (without its newline) and empties the buffer.
    # @yieldparam line [String]
    # @return [Array<String>] the lines
    def log_drain
      lines = []
      handler = FFI::Function.new(:void, %i[pointer uint64]) do |data, size|
        lines << data.get_bytes(0, size).force_encoding(Encoding::UTF_8)
      rescue Exception # rubocop:disable Lint/RescueException -- must not unwind into Rust
        nil
      end
      Native.extism_log_drain(handler)
      lines.each { |l| yield l } if block_given?
      lines
    end
  end
end
