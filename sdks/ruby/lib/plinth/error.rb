# frozen_string_literal: true

module Plinth
  # Every failure reported by libplinth, and misuse of a closed plug-in, raises this.
  #
  # The message is libplinth's (from +extism_plugin_error+, or +errmsg+ when a plug-in could
  # not be created). {#kind} says what kind of failure it is, as a Symbol (+:trap+,
  # +:function_not_found+, +:timeout+, +:manifest+, ...), and {#kind_code} as a number: the
  # runtime's error kinds, with the same names and numbers in every Plinth SDK and the C API
  # ({Plinth::ERROR_KINDS} lists them). {#code} is Extism's return code: the plug-in's own code
  # when a call failed with one (e.g. 42), 134 for a trap, else -1 (timeouts, cancellation,
  # memory limit, host function errors, and every failure outside a call: loading, config).
  class Error < StandardError
    # @return [Integer] Extism's return code (-1 when the host found the failure)
    attr_reader :code

    # @return [Integer] the stable number of {#kind}
    attr_reader :kind_code

    # @param message [String]
    # @param code [Integer] the return code
    # @param kind [Symbol, Integer] the kind's name or number (+:other+ by default)
    def initialize(message = "plinth error", code: -1, kind: :other)
      super(message)
      @code = code.nil? ? -1 : code
      @kind_code = Error.kind_number(kind)
    end

    # @return [Symbol] the kind of failure, e.g. +:trap+ or +:timeout+
    def kind
      ERROR_KINDS.fetch(@kind_code, :other)
    end

    # @api private: the number of a kind given by name or number; unknown ones are +:other+.
    def self.kind_number(kind)
      if kind.is_a?(Integer)
        ERROR_KINDS.key?(kind) ? kind : ERROR_KINDS.key(:other)
      else
        ERROR_KINDS.key(kind.to_sym) || ERROR_KINDS.key(:other)
      end
    end
  end
end
