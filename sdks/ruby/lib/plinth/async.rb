# frozen_string_literal: true

module Plinth
  # A host function that answers later: its block gets a {Completion} instead of outputs to
  # fill, and any Ruby thread finishes it when the answer is ready. Meanwhile the plug-in waits
  # in its import and libplinth's worker thread serves other calls.
  #
  #   lookup = Plinth::AsyncHostFunction.new("lookup") do |plugin, inputs, completion|
  #     key = plugin.read_string(inputs[0])
  #     Thread.new { completion.return_string(slow_lookup(key)) }
  #   end
  #   plugin = Plinth::Plugin.new(wasm, functions: [lookup])
  #   plugin.call_async("run", "key").value
  #
  # The {CurrentPlugin} is valid only while the block runs: read the inputs there. A plug-in
  # that imports an async host function must be called with {Plugin#call_async}. When the block
  # raises before finishing the completion, the call fails with that exception's message.
  class AsyncHostFunction < HostFunction
    # @param name [String] the import name
    # @param params [Array<Symbol>] parameter types, from :i32, :i64, :f32, :f64
    # @param results [Array<Symbol>] result types
    # @param namespace [String] the import module
    # @param user_data [Object] handed to the block on every call
    # @yieldparam current_plugin [CurrentPlugin]
    # @yieldparam inputs [Array<Numeric>]
    # @yieldparam completion [Completion] finish it exactly once, from any thread
    # @yieldparam user_data [Object]
    def initialize(name, params: [PTR], results: [PTR], namespace: "extism:host/user", user_data: nil, &block) # rubocop:disable Lint/MissingSuper -- makes an async native function instead
      raise ArgumentError, "AsyncHostFunction needs a block" unless block

      @name = name.to_s
      @namespace = namespace.to_s
      @params = params.map { |t| check_type(t) }.freeze
      @results = results.map { |t| check_type(t) }.freeze
      @user_data = user_data
      @block = block
      # Kept for as long as this object lives; every plug-in made with it references it.
      @callback = FFI::Function.new(:void, %i[pointer pointer uint64 pointer pointer]) do |cur, ins, n_in, completion, _data|
        invoke_async(cur, ins, n_in, completion)
      end
      @ptr = Native.plinth_function_new_async(@name, types_ptr(@params), @params.size,
                                              types_ptr(@results), @results.size, @callback, nil, nil)
      raise Error, "could not create async host function #{@name.inspect}" if @ptr.null?

      Native.extism_function_set_namespace(@ptr, @namespace)
      ObjectSpace.define_finalizer(self, self.class.releaser(@ptr))
    end

    def inspect
      "#<Plinth::AsyncHostFunction #{@namespace}::#{@name}(#{@params.join(', ')}) -> (#{@results.join(', ')})>"
    end

    private

    # Runs the block for one call from a plug-in. Nothing may escape from here into Rust.
    def invoke_async(cur, ins, n_in, completion_ptr)
      completion = Completion.new(completion_ptr, @results, @name)
      current = nil
      begin
        current = CurrentPlugin.new(cur, nil)
        inputs = Array.new(n_in) { |i| read_val(Native::Val.new(ins + (i * Native::Val.size))) }
        @block.call(current, inputs, completion, @user_data)
      rescue Exception => e # rubocop:disable Lint/RescueException -- must not unwind into Rust
        begin
          completion.fail("host function #{@name} raised #{e.class}: #{e.message}") unless completion.finished?
        rescue Exception # rubocop:disable Lint/RescueException
          nil
        end
      ensure
        current&.invalidate!
      end
      nil
    end
  end

  # The pending answer of one {AsyncHostFunction} call. Finish it exactly once, from any
  # thread, with {#return}, {#return_bytes} / {#return_string} or {#fail}. Each returns true
  # when the call was waiting for it, false when that call is over (cancelled or timed out):
  # finishing is then harmless.
  class Completion
    # @api private
    def initialize(ptr, results, function)
      @ptr = ptr
      @results = results
      @function = function
      @lock = Mutex.new
    end

    # Finishes with the function's results, one value per result type.
    # @param values [Array<Numeric>]
    # @return [Boolean]
    def return(*values)
      unless values.size == @results.size
        raise ArgumentError, "#{@function} has #{@results.size} results, got #{values.size} values"
      end

      mem = FFI::MemoryPointer.new(Native::Val, [values.size, 1].max)
      values.each_with_index do |v, i|
        write_val(Native::Val.new(mem + (i * Native::Val.size)), @results[i], v)
      end
      finish { |ptr| Native.plinth_completion_return(ptr, mem, values.size) }
    end

    # Finishes with bytes: libplinth copies them into the plug-in's memory when it resumes, and
    # their handle becomes the first result (an :i64).
    # @param bytes [String]
    # @return [Boolean]
    def return_bytes(bytes)
      data, len = Native.buffer(bytes.to_str)
      finish { |ptr| Native.plinth_completion_return_bytes(ptr, data, len) }
    end

    # {#return_bytes} of a string's bytes.
    # @return [Boolean]
    def return_string(string)
      return_bytes(string.to_s)
    end

    # Fails the plug-in's call with +message+ (an exception gives its message): the caller of
    # {Plugin#call_async} gets a {Plinth::Error} of kind +:host_function+.
    # @param message [String, Exception]
    # @return [Boolean]
    def fail(message)
      text = message.is_a?(Exception) ? "#{message.class}: #{message.message}" : message.to_s
      finish { |ptr| Native.plinth_completion_fail(ptr, text.delete("\0")) }
    end

    # Whether the call still waits for this completion (false once it was cancelled, timed
    # out or this completion was finished).
    # @return [Boolean]
    def waiting?
      @lock.synchronize { !@ptr.nil? && Native.plinth_completion_is_waiting(@ptr) }
    end

    # @return [Boolean]
    def finished?
      @lock.synchronize { @ptr.nil? }
    end

    private

    def finish
      @lock.synchronize do
        raise Error.new("this completion of #{@function} was finished already", kind: :other) if @ptr.nil?

        ptr = @ptr
        @ptr = nil
        yield ptr
      end
    end

    def write_val(val, type, value)
      val[:t] = type
      case type
      when :i32 then val[:v][:i32] = Integer(value)
      when :i64 then val[:v][:i64] = Integer(value)
      when :f32 then val[:v][:f32] = Float(value)
      when :f64 then val[:v][:f64] = Float(value)
      end
    end
  end

  # An async call in flight ({Plugin#call_async}). {#value} waits for its output.
  class AsyncCall
    # Calls in flight, so that neither their callbacks nor their plug-in's host functions are
    # garbage collected before libplinth is done with them.
    PENDING = {}
    PENDING_LOCK = Mutex.new
    private_constant :PENDING, :PENDING_LOCK

    # @api private
    def initialize(plugin, on_done)
      @plugin = plugin
      @on_done = on_done
      @lock = Mutex.new
      @cond = ConditionVariable.new
      @done = false
      @callback = FFI::Function.new(:void, %i[pointer int32 int32 pointer uint64 pointer]) do |_ud, rc, kind, out, len, err|
        complete(rc, kind, out, len, err)
      end
    end

    # @api private
    def start(ptr, name, data, len)
      PENDING_LOCK.synchronize { PENDING[object_id] = self }
      func = FFI::MemoryPointer.from_string(name.to_s)
      return self if Native.plinth_plugin_call_async(ptr, func, data, len, @callback, nil)

      PENDING_LOCK.synchronize { PENDING.delete(object_id) }
      err = Native.extism_plugin_error(ptr)
      raise Error.new(err.null? ? "the async call could not start" : err.read_string,
                      kind: Native.plinth_plugin_error_kind(ptr))
    end

    # Waits for the call and returns its output (binary String), or raises its
    # {Plinth::Error}.
    # @param timeout [Numeric, nil] seconds to wait at most; nil waits for ever
    # @return [String, nil] nil when +timeout+ passed first
    def value(timeout = nil)
      @lock.synchronize do
        deadline = timeout && (Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout)
        until @done
          left = deadline && (deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC))
          return nil if left && left <= 0

          @cond.wait(@lock, left)
        end
        raise @error if @error

        @output
      end
    end

    # @return [Boolean] whether the call is over
    def done?
      @lock.synchronize { @done }
    end

    private

    def complete(rc, kind, out, len, err)
      output = nil
      error = nil
      if rc.zero?
        output = len.zero? ? "".b : out.get_bytes(0, len)
      else
        message = err.null? ? "the call failed" : err.read_string.force_encoding(Encoding::UTF_8)
        error = Error.new(message, code: rc, kind: kind)
      end
      @lock.synchronize do
        @output = output
        @error = error
        @done = true
        @cond.broadcast
      end
      begin
        @on_done&.call(output, error)
      rescue Exception => e # rubocop:disable Lint/RescueException -- runs on ffi's callback thread
        warn "plinth: call_async block raised #{e.class}: #{e.message}"
      end
    ensure
      PENDING_LOCK.synchronize { PENDING.delete(object_id) }
    end
  end

  class Plugin
    # Calls an exported function without waiting: returns an {AsyncCall} at once, whose
    # {AsyncCall#value} waits for the output (or raises the {Plinth::Error}). With a block, the
    # block also gets +(output, error)+ when the call is over, on ffi's callback thread.
    #
    # This is how plug-ins that import {AsyncHostFunction}s are called; others may be called so
    # too. Calls on one plug-in run one at a time, in the order they were made; while async
    # calls are queued or running, {#call} raises a {Plinth::Error} of kind +:busy+ instead of
    # waiting. {CancelHandle#cancel} and the manifest's +timeout_ms+ stop a call also while an
    # async host function waits. Closing the plug-in lets calls already made finish.
    # @param name [String, Symbol] the export
    # @param input [String, nil] bytes passed to the plug-in
    # @yieldparam output [String, nil]
    # @yieldparam error [Plinth::Error, nil]
    # @return [AsyncCall]
    def call_async(name, input = nil, &block)
      input = input.nil? ? "" : input.to_str
      data, len = Native.buffer(input)
      with_ptr { |ptr| AsyncCall.new(self, block).start(ptr, name, data, len) }
    end
  end
end
