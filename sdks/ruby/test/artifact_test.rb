# frozen_string_literal: true

require_relative "test_helper"

# Precompiled artifacts (CompiledPlugin.compile_artifact / .from_artifact / #precompiled?) and
# fresh calls (CompiledPlugin#call_fresh).
class ArtifactTest < Minitest::Test
  include PlinthTestHelper

  KEY = "0123456789abcdef0123456789abcdef"

  # count adds one to a global and outputs it as a digit: a kept instance answers "1", "2",
  # "3", a fresh instance always "1".
  COUNTER_WAT = <<~WAT
    (module
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
      (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
      (memory 1) (global $n (mut i32) (i32.const 0))
      (func (export "count") (result i32) (local $h i64)
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (local.set $h (call $alloc (i64.const 1)))
        (call $store_u8 (local.get $h) (i32.add (i32.const 48) (global.get $n)))
        (call $output_set (local.get $h) (i64.const 1)) (i32.const 0))
      (func (export "trap") (result i32) unreachable))
  WAT

  def test_round_trip
    artifact = Plinth::CompiledPlugin.compile_artifact(plugin_bytes("count_vowels"), KEY)
    assert_equal Encoding::ASCII_8BIT, artifact.encoding
    assert artifact.start_with?("plinth artifact")
    compiled = Plinth::CompiledPlugin.from_artifact(artifact, KEY)
    assert compiled.precompiled?
    assert_equal 3, JSON.parse(compiled.call_fresh("count_vowels", "Hello, world"))["count"]
    compiled.instance { |p| assert_equal 3, JSON.parse(p.call("count_vowels", "aaa"))["count"] }
    compiled.close
    refute compiled.precompiled?, "closed"
    assert_equal :closed, assert_raises(Plinth::Error) { compiled.call_fresh("count_vowels") }.kind

    from_wasm = Plinth::CompiledPlugin.new(plugin_bytes("count_vowels"))
    refute from_wasm.precompiled?
    from_wasm.close
  end

  def test_a_refused_artifact_raises_kind_artifact
    artifact = Plinth::CompiledPlugin.compile_artifact(plugin_bytes("count_vowels"), KEY)
    [0, 40, artifact.bytesize / 2, artifact.bytesize - 1].each do |at|
      tampered = artifact.dup
      tampered.setbyte(at, tampered.getbyte(at) ^ 1)
      err = assert_raises(Plinth::Error) { Plinth::CompiledPlugin.from_artifact(tampered, KEY) }
      assert_equal [:artifact, 25, -1], [err.kind, err.kind_code, err.code], "byte #{at}: #{err.message}"
    end
    err = assert_raises(Plinth::Error) { Plinth::CompiledPlugin.from_artifact(artifact, "fedcba9876543210fedcba9876543210") }
    assert_equal :artifact, err.kind
    assert_match(/another key/, err.message)
    err = assert_raises(Plinth::Error) { Plinth::CompiledPlugin.from_artifact(plugin_bytes("count_vowels"), KEY) }
    assert_equal :artifact, err.kind
    err = assert_raises(Plinth::Error) { Plinth::CompiledPlugin.compile_artifact(plugin_bytes("count_vowels"), "short") }
    assert_equal :artifact, err.kind
    err = assert_raises(Plinth::Error) { Plinth::CompiledPlugin.compile_artifact("\0asm\x01\0\0\0garbage".b, KEY) }
    assert_equal :compile, err.kind
    assert_raises(TypeError) { Plinth::CompiledPlugin.compile_artifact(Pathname(plugin_path("count_vowels")), KEY) }
    assert_equal :artifact, Plinth::ERROR_KINDS[25]
  end

  def test_call_fresh_isolates_calls
    compiled = Plinth::CompiledPlugin.new(COUNTER_WAT)
    compiled.instance do |p|
      assert_equal %w[1 2 3], Array.new(3) { p.call("count") }
    end
    from_artifact = Plinth::CompiledPlugin.from_artifact(Plinth::CompiledPlugin.compile_artifact(COUNTER_WAT, KEY), KEY)
    outs = [compiled, from_artifact].flat_map do |c|
      Array.new(2) { Thread.new { Array.new(10) { c.call_fresh("count") } } }.flat_map(&:value)
    end
    assert_equal ["1"] * 40, outs
    err = assert_raises(Plinth::Error) { from_artifact.call_fresh("trap") }
    assert_equal [:trap, 134], [err.kind, err.code]
    err = assert_raises(Plinth::Error) { from_artifact.call_fresh("missing") }
    assert_equal [:function_not_found, -1], [err.kind, err.code]
  ensure
    compiled&.close
    from_artifact&.close
  end

  def test_call_fresh_with_host_functions
    wat = <<~WAT
      (module
        (import "extism:host/user" "greet" (func $greet (param i64) (result i64)))
        (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
        (import "extism:host/env" "length" (func $length (param i64) (result i64)))
        (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
        (memory 1)
        (func (export "run") (result i32) (local $h i64)
          (local.set $h (call $greet (call $input_offset)))
          (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))
    WAT
    greet = Plinth::HostFunction.new("greet", params: [:i64], results: [:i64]) do |plugin, inputs, outputs|
      name = plugin.read_string(inputs[0])
      raise ArgumentError, "no #{name}" if name == "bad"

      outputs[0] = plugin.write_string("#{plugin.host_context || 'Hello'}, #{name}")
    end
    compiled = Plinth::CompiledPlugin.from_artifact(
      Plinth::CompiledPlugin.compile_artifact(wat, KEY, functions: [greet]), KEY, functions: [greet]
    )
    assert_equal "Hello, Ada", compiled.call_fresh("run", "Ada")
    assert_equal "Howdy, Bob", compiled.call_fresh("run", "Bob", host_context: "Howdy")
    err = assert_raises(Plinth::Error) { compiled.call_fresh("run", "bad") }
    assert_equal :host_function, err.kind
    assert_instance_of ArgumentError, err.cause
    compiled.close
  end
end
