# frozen_string_literal: true

module Plinth
  # Every failure reported by libplinth, and misuse of a closed plug-in, raises this.
  #
  # The message is libplinth's (from +extism_plugin_error+, or +errmsg+ when a plug-in could
  # not be created). {#code} is the return code of a failed call: the plug-in's own non-zero
  # code when it returned one (e.g. 42), else -1 (traps, timeouts, cancellation, memory limit,
  # host function errors). It is +nil+ for failures that are not calls (loading, config).
  class Error < StandardError
    # @return [Integer, nil] the failed call's return code, or nil
    attr_reader :code

    # @param message [String]
    # @param code [Integer, nil]
    def initialize(message = "plinth error", code: nil)
      super(message)
      @code = code
    end
  end
end
