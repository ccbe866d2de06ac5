# frozen_string_literal: true

module Plinth
  # A function written in Ruby that plug-ins import (by default from +extism:host/user+).
  #
  #   greet = Plinth::HostFunction.new("greet", params: [:i64], results: [:i64],
  #                                    user_data: "Hello, ") do |plugin, inputs, outputs, prefix|
  #     name = plugin.read_string(inputs[0])
  #     outputs[0] = plugin.write_string("#{prefix}#{name}")
  #   end
  #   Plinth::Plugin.new(wasm, functions: [greet])
  #
  # The block gets a {CurrentPlugin}, the inputs as an Array of Integers/Floats, an Array of
  # outputs to fill (one slot per result, nil meaning 0) and +user_data+. When the function
  # has one result and the block leaves +outputs+ untouched, a numeric return value of the
  # block is used as the result.
  #
  # An exception raised by the block never unwinds into libplinth: it is rescued, the outputs
  # are left 0, and {Plugin#call} raises it afterwards as a {Plinth::Error} (code -1) whose
  # message names the function, with the original exception as +cause+.
  #
  # The Ruby callback is referenced by this object, and every plug-in made with it references
  # this object, so the garbage collector cannot free a callback that a plug-in may still call.
  class HostFunction
    # Value types a host function may take and return.
    TYPES = %i[i32 i64 f32 f64].freeze
    # Extism's handle type: an i64 offset into the plug-in's memory.
    PTR = :i64

    # @return [String]
    attr_reader :name, :namespace
    # @return [Array<Symbol>]
    attr_reader :params, :results
    # @return [Object]
    attr_reader :user_data

    # @param name [String] the import name
    # @param params [Array<Symbol>] parameter types, from :i32, :i64, :f32, :f64
    # @param results [Array<Symbol>] result types
    # @param namespace [String] the import module
    # @param user_data [Object] handed to the block on every call
    # @yieldparam current_plugin [CurrentPlugin]
    # @yieldparam inputs [Array<Numeric>]
    # @yieldparam outputs [Array<Numeric, nil>]
    # @yieldparam user_data [Object]
    def initialize(name, params: [PTR], results: [PTR], namespace: "extism:host/user", user_data: nil, &block)
      raise ArgumentError, "HostFunction needs a block" unless block

      @name = name.to_s
      @namespace = namespace.to_s
      @params = params.map { |t| check_type(t) }.freeze
      @results = results.map { |t| check_type(t) }.freeze
      @user_data = user_data
      @block = block
      # Kept for as long as this object lives (see the class comment).
      @callback = FFI::Function.new(:void, %i[pointer pointer uint64 pointer uint64 pointer]) do |cur, ins, n_in, outs, n_out, _data|
        invoke(cur, ins, n_in, outs, n_out)
      end
      @ptr = Native.extism_function_new(@name, types_ptr(@params), @params.size,
                                        types_ptr(@results), @results.size, @callback, nil, nil)
      raise Error, "could not create host function #{@name.inspect}" if @ptr.null?

      Native.extism_function_set_namespace(@ptr, @namespace)
      ObjectSpace.define_finalizer(self, self.class.releaser(@ptr))
    end

    # @api private
    # Frees the native function; plug-ins made with it keep working (libplinth counts them).
    def self.releaser(ptr)
      proc { Native.extism_function_free(ptr) }
    end

    # @api private
    def native_ptr
      @ptr
    end

    def inspect
      "#<Plinth::HostFunction #{@namespace}::#{@name}(#{@params.join(', ')}) -> (#{@results.join(', ')})>"
    end

    private

    def check_type(t)
      t = t.to_sym
      raise ArgumentError, "unsupported value type #{t.inspect} (use #{TYPES.join(', ')})" unless TYPES.include?(t)

      t
    end

    def types_ptr(types)
      mem = FFI::MemoryPointer.new(:int32, [types.size, 1].max)
      mem.write_array_of_int32(types.map { |t| Native::ValType[t] }) unless types.empty?
      mem
    end

    # Runs the block for one call from a plug-in. Nothing may escape from here into Rust.
    def invoke(cur, ins, n_in, outs, n_out)
      frame = nil
      current = nil
      begin
        ctx = Native.extism_current_plugin_host_context(cur)
        frame = CallFrame.lookup(ctx.address) unless ctx.null?
        current = CurrentPlugin.new(cur, frame)
        inputs = Array.new(n_in) { |i| read_val(Native::Val.new(ins + (i * Native::Val.size))) }
        outputs = Array.new(n_out)
        ret = @block.call(current, inputs, outputs, @user_data)
        outputs[0] = ret if n_out == 1 && outputs[0].nil? && ret.is_a?(Numeric)
        n_out.times { |i| write_val(Native::Val.new(outs + (i * Native::Val.size)), @results[i], outputs[i] || 0) }
      rescue Exception => e # rubocop:disable Lint/RescueException -- must not unwind into Rust
        begin
          n_out.times { |i| write_val(Native::Val.new(outs + (i * Native::Val.size)), @results[i], 0) }
          if frame
            unless frame.error
              frame.error = e
              frame.error_function = @name
            end
          else
            warn "plinth: host function #{@name} raised #{e.class}: #{e.message}"
          end
        rescue Exception # rubocop:disable Lint/RescueException
          nil
        end
      ensure
        current&.invalidate!
      end
      nil
    end

    def read_val(val)
      case val[:t]
      when :i32 then val[:v][:i32]
      when :i64 then val[:v][:i64]
      when :f32 then val[:v][:f32]
      when :f64 then val[:v][:f64]
      else 0
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
end
