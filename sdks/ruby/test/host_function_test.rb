# frozen_string_literal: true

require_relative "test_helper"

class HostFunctionTest < Minitest::Test
  include PlinthTestHelper

  # Imports `greet` from NAMESPACE and outputs what it returns.
  def host_wat(namespace = "extism:host/user")
    <<~WAT
      (module
        (import "#{namespace}" "greet" (func $greet (param i64) (result i64)))
        (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
        (import "extism:host/env" "length" (func $length (param i64) (result i64)))
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (memory 1)
        (func (export "run") (result i32) (local $h i64)
          (local.set $h (call $greet (call $input_offset)))
          (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))
    WAT
  end

  def greeter(**opts)
    Plinth::HostFunction.new("greet", params: [:i64], results: [:i64], **opts) do |plugin, inputs, outputs, user_data|
      name = plugin.read_string(inputs[0])
      outputs[0] = plugin.write_string("#{user_data || 'Hello, '}#{name}")
    end
  end

  def test_round_trip_with_host_greet_and_user_data
    seen = []
    greet = Plinth::HostFunction.new("greet", params: [:i64], results: [:i64],
                                              user_data: { prefix: "Howdy, " }) do |plugin, inputs, outputs, data|
      seen << [plugin.class, inputs.size, outputs.size, plugin.length(inputs[0])]
      outputs[0] = plugin.write_string(data[:prefix] + plugin.read_string(inputs[0]))
    end
    Plinth::Plugin.open(plugin_bytes("host_greet"), functions: [greet]) do |p|
      assert_equal "Howdy, Ada", p.call("call_greet", "Ada")
      assert_equal "Howdy, Bob", p.call("call_greet", "Bob").force_encoding("UTF-8")
    end
    assert_equal [[Plinth::CurrentPlugin, 1, 1, 3], [Plinth::CurrentPlugin, 1, 1, 3]], seen
  end

  def test_return_value_as_single_result
    greet = Plinth::HostFunction.new("greet") { |plugin, inputs| plugin.write_string("<#{plugin.read_string(inputs[0])}>") }
    Plinth::Plugin.open(host_wat, functions: [greet]) { |p| assert_equal "<x>", p.call("run", "x") }
  end

  def test_binary_and_utf8
    echo = Plinth::HostFunction.new("greet") do |plugin, inputs, outputs|
      bytes = plugin.read_bytes(inputs[0])
      plugin.free(inputs[0])
      outputs[0] = plugin.write_bytes(bytes.reverse)
    end
    Plinth::Plugin.open(host_wat, functions: [echo]) do |p|
      assert_equal "\x03\x00\xff".b, p.call("run", "\xff\x00\x03".b)
      assert_equal "".b, p.call("run", "")
    end
  end

  def test_custom_namespace
    Plinth::Plugin.open(host_wat("custom"), functions: [greeter(namespace: "custom", user_data: "Hi, ")]) do |p|
      assert_equal "Hi, Cy", p.call("run", "Cy")
    end
  end

  def test_missing_host_function_fails_to_load
    err = assert_raises(Plinth::Error) { Plinth::Plugin.new(plugin_bytes("host_greet")) }
    assert_includes err.message, "greet"
  end

  def test_host_context
    ctx_fn = Plinth::HostFunction.new("greet") do |plugin, _inputs, outputs|
      outputs[0] = plugin.write_string(plugin.host_context.nil? ? "none" : plugin.host_context.fetch(:user))
    end
    Plinth::Plugin.open(host_wat, functions: [ctx_fn]) do |p|
      assert_equal "ada", p.call("run", "", host_context: { user: "ada" })
      assert_equal "none", p.call("run", "")
    end
  end

  def test_exception_in_block_becomes_the_call_error
    calls = 0
    boom = Plinth::HostFunction.new("greet") do |_plugin, _inputs, _outputs|
      calls += 1
      raise ArgumentError, "no such customer"
    end
    Plinth::Plugin.open(plugin_bytes("host_greet"), functions: [boom]) do |p|
      err = assert_raises(Plinth::Error) { p.call("call_greet", "Ada") }
      assert_includes err.message, "no such customer"
      assert_includes err.message, "greet"
      assert_equal(-1, err.code)
      assert_kind_of ArgumentError, err.cause
      assert_raises(Plinth::Error) { p.call("call_greet", "Ada") }
      assert_equal 2, calls
    end
  end

  def test_bad_output_value_is_rescued
    bad = Plinth::HostFunction.new("greet") { |_p, _i, outputs| outputs[0] = "not a number" }
    Plinth::Plugin.open(host_wat, functions: [bad]) do |p|
      assert_raises(Plinth::Error) { p.call("run", "x") }
    end
  end

  def test_current_plugin_is_invalid_after_the_call
    kept = nil
    fn = Plinth::HostFunction.new("greet") do |plugin, inputs, outputs|
      kept = plugin
      outputs[0] = inputs[0]
    end
    Plinth::Plugin.open(host_wat, functions: [fn]) { |p| assert_equal "same", p.call("run", "same") }
    assert_raises(Plinth::Error) { kept.read_string(0) }
  end

  def test_reentrant_call_is_refused
    plugin = nil
    result = nil
    fn = Plinth::HostFunction.new("greet") do |cp, _inputs, outputs|
      begin
        plugin.call("run", "again")
        result = :not_refused
      rescue Plinth::Error => e
        result = e.message
      end
      outputs[0] = cp.write_string("ok")
    end
    plugin = Plinth::Plugin.new(host_wat, functions: [fn])
    assert_equal "ok", plugin.call("run", "x")
    assert_includes result, "re-entrant"
    plugin.close
  end

  def test_callback_survives_gc
    plugin = Plinth::Plugin.new(host_wat, functions: [greeter(user_data: "GC, ")])
    # The HostFunction is referenced only by the plug-in now.
    5.times { GC.start(full_mark: true, immediate_sweep: true) }
    GC.compact if GC.respond_to?(:compact)
    100.times { |i| assert_equal "GC, #{i}", plugin.call("run", i.to_s) }
    plugin.close
  end

  def test_compiled_plugin_with_host_function
    compiled = Plinth::CompiledPlugin.new(host_wat, functions: [greeter])
    compiled.instance { |p| assert_equal "Hello, A", p.call("run", "A") }
    inst = compiled.instance
    compiled.close
    GC.start
    assert_equal "Hello, B", inst.call("run", "B")
    inst.close
  end

  def test_numeric_types
    wat = <<~WAT
      (module
        (import "extism:host/user" "mix" (func $mix (param i32 i64 f32 f64) (result f64)))
        (import "extism:host/user" "answer" (func $answer (result i32)))
        (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
        (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (memory 1)
        (func (export "run") (result i32) (local $h i64)
          (local.set $h (call $alloc (i64.const 8)))
          (call $store_u64 (local.get $h)
            (i64.trunc_f64_s (call $mix (call $answer) (i64.const 20) (f32.const 0.5) (f64.const 0.25))))
          (call $output_set (local.get $h) (i64.const 8)) (i32.const 0)))
    WAT
    got = nil
    mix = Plinth::HostFunction.new("mix", params: %i[i32 i64 f32 f64], results: [:f64]) do |_p, inputs, outputs|
      got = inputs
      outputs[0] = inputs.sum * 2
    end
    answer = Plinth::HostFunction.new("answer", params: [], results: [:i32]) { 21 }
    Plinth::Plugin.open(wat, functions: [mix, answer]) do |p|
      assert_equal 83, p.call("run").unpack1("q<") # (21 + 20 + 0.5 + 0.25) * 2 = 83.5
    end
    assert_equal [21, 20, 0.5, 0.25], got
  end

  def test_argument_checks
    assert_raises(ArgumentError) { Plinth::HostFunction.new("x") }
    assert_raises(ArgumentError) { Plinth::HostFunction.new("x", params: [:v128]) { nil } }
    assert_raises(TypeError) { Plinth::Plugin.new(host_wat, functions: ["greet"]) }
  end
end
