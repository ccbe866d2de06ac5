# frozen_string_literal: true

module Plinth
  # What one {Plugin#call} shares with the host functions it runs: the caller's host context
  # and the first exception a host function raised. libplinth carries only a pointer-sized
  # host context, so frames are registered under a small integer passed as that pointer.
  # @api private
  class CallFrame
    attr_reader :host_context
    # The first exception a host function raised during the call, and that function's name.
    attr_accessor :error, :error_function

    @frames = {}
    @next_id = 0
    @lock = Mutex.new

    class << self
      # Registers a frame for the duration of the block; yields its id.
      def open(host_context)
        frame = new(host_context)
        id = @lock.synchronize do
          @next_id = (@next_id % 0x7fff_ffff) + 1
          @frames[@next_id] = frame
          @next_id
        end
        begin
          yield frame, id
        ensure
          @lock.synchronize { @frames.delete(id) }
        end
      end

      # The frame whose id a host function received as host context, or nil.
      def lookup(id)
        @lock.synchronize { @frames[id] }
      end
    end

    def initialize(host_context)
      @host_context = host_context
      @error = nil
    end
  end
end
