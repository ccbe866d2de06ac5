# frozen_string_literal: true

require_relative "test_helper"

class PluginTest < Minitest::Test
  include PlinthTestHelper

  def test_library_version
    refute_empty Plinth.library_version
  end

  def test_load_from_bytes_file_and_manifest
    sources = {
      bytes: -> { Plinth::Plugin.new(plugin_bytes("count_vowels")) },
      pathname: -> { Plinth::Plugin.new(Pathname(plugin_path("count_vowels"))) },
      from_file: -> { Plinth::Plugin.from_file(plugin_path("count_vowels")) },
      manifest: -> { Plinth::Plugin.new({ wasm: [{ path: plugin_path("count_vowels") }] }) },
      manifest_data: -> { Plinth::Plugin.new({ wasm: [{ data: plugin_bytes("count_vowels") }] }) }
    }
    sources.each do |how, make|
      plugin = make.call
      out = JSON.parse(plugin.call("count_vowels", "Hello, world"))
      assert_equal 3, out["count"], how
      assert_match(/\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/, plugin.id)
      plugin.close
    end
  end

  def test_output_is_binary_string
    Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
      out = p.call("count_vowels", "aaa")
      assert_equal Encoding::ASCII_8BIT, out.encoding
      assert_equal 3, JSON.parse(out)["count"]
    end
  end

  def test_count_vowels_running_total_and_config
    Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
      first = JSON.parse(p.call("count_vowels", "Hello, world"))
      assert_equal [3, 3], first.values_at("count", "total")
      assert_equal 6, JSON.parse(p.call("count_vowels", "aaa"))["total"]
      third = JSON.parse(p.call("count_vowels", "Hello, world"))
      assert_equal 3, third["count"]
      assert_equal 9, third["total"], "the var `total` carries over between calls"

      p.update_config("vowels" => "o")
      out = JSON.parse(p.call("count_vowels", "Hello, world"))
      assert_equal 2, out["count"]
      assert_equal "o", out["vowels"]

      p.update_config(vowels: nil) # nil removes the key: back to the default vowels
      out = JSON.parse(p.call("count_vowels", "Hello, world"))
      assert_equal 3, out["count"]
      assert_equal "aeiouAEIOU", out["vowels"]
    end
  end

  def test_config_from_manifest
    m = { wasm: [{ path: Pathname(plugin_path("count_vowels")) }], config: { vowels: "l" } }
    Plinth::Plugin.open(m) { |p| assert_equal 3, JSON.parse(p.call("count_vowels", "Hello, world"))["count"] }
  end

  def test_call_json_checkout
    Plinth::Plugin.open({ wasm: [{ path: plugin_path("checkout") }] }) do |p|
      new_customer = { cart_total: 12_000, is_new_customer: true, provided_email: true }
      assert_equal({ "discount_percent" => 20.0 }, p.call_json("before_checkout_finalize", new_customer))
      returning = p.call_json("before_checkout_finalize", cart_total: 12_000, is_new_customer: false,
                                                          provided_email: true)
      assert_equal 0.0, returning["discount_percent"]
    end
  end

  def test_fail_with_code
    Plinth::Plugin.open(plugin_bytes("fail_with_code")) do |p|
      err = assert_raises(Plinth::Error) { p.call("fail_with_code", "") }
      assert_equal 42, err.code
      assert_includes err.message, "custom failure"
      assert_kind_of StandardError, err
    end
  end

  def test_missing_function
    Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
      assert p.function_exists?("count_vowels")
      assert p.function_exists?(:count_vowels)
      refute p.function_exists?("nope")
      err = assert_raises(Plinth::Error) { p.call("nope", "x") }
      assert_includes err.message, "not found"
      assert_equal(-1, err.code)
      assert_equal 3, JSON.parse(p.call("count_vowels", "aei"))["count"], "still usable"
    end
  end

  def test_bad_wasm
    err = assert_raises(Plinth::Error) { Plinth::Plugin.new("\0asm garbage") }
    refute_empty err.message
    assert_equal(-1, err.code)
    assert_equal :compile, err.kind
    assert_equal 2, err.kind_code
    assert_raises(Plinth::Error) { Plinth::Plugin.new("") }
    err = assert_raises(Plinth::Error) { Plinth::Plugin.new({ wasm: [{ path: "/no/such.wasm" }], extra: 1 }) }
    assert_includes err.message, "extra"
    assert_raises(TypeError) { Plinth::Plugin.new(42) }
    err = assert_raises(Plinth::Error) { Plinth::Plugin.from_file("/no/such.wasm") }
    assert_equal :manifest, err.kind
    assert_includes err.message, "/no/such.wasm"
    assert_kind_of Errno::ENOENT, err.cause
  end

  def test_wat_source_and_fuel
    Plinth::Plugin.open(HOSTILE_WAT) { |p| assert_equal "".b, p.call("ok") }
    Plinth::Plugin.open(HOSTILE_WAT, fuel_limit: 10_000) do |p|
      err = assert_raises(Plinth::Error) { p.call("spin") }
      assert_includes err.message, "fuel"
      assert_equal "", p.call("ok")
    end
  end

  def test_wasi_on
    Plinth::Plugin.open(plugin_bytes("count_vowels"), wasi: true) do |p|
      assert_equal 1, JSON.parse(p.call("count_vowels", "a"))["count"]
    end
    Plinth::Plugin.open(HOSTILE_WAT, wasi: true) { |p| assert_equal "", p.call("ok") }
  end

  def test_close_twice_and_use_after_close
    p = Plinth::Plugin.new(plugin_bytes("count_vowels"))
    refute p.closed?
    assert_nil p.close
    assert_nil p.close
    assert p.closed?
    err = assert_raises(Plinth::Error) { p.call("count_vowels", "a") }
    assert_includes err.message, "closed"
    assert_raises(Plinth::Error) { p.function_exists?("count_vowels") }
  end

  def test_block_form_closes
    kept = nil
    result = Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
      kept = p
      :value
    end
    assert_equal :value, result
    assert kept.closed?

    assert_raises(RuntimeError) do
      Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
        kept = p
        raise "oops"
      end
    end
    assert kept.closed?, "closed even when the block raises"
    Plinth::Plugin.from_file(plugin_path("count_vowels")) { |p| kept = p }
    assert kept.closed?
  end

  def test_reset
    Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
      p.call("count_vowels", "a")
      assert p.reset
      assert_equal 1, JSON.parse(p.call("count_vowels", "a"))["count"]
    end
  end

  def test_distinct_ids
    a = Plinth::Plugin.new(HOSTILE_WAT)
    b = Plinth::Plugin.new(HOSTILE_WAT)
    refute_equal a.id, b.id
  ensure
    a&.close
    b&.close
  end

  def test_unclosed_plugins_are_finalized
    50.times { Plinth::Plugin.new(HOSTILE_WAT).call("ok") }
    GC.start
    GC.start
    pass
  end

  def test_compiled_plugin_instances
    compiled = Plinth::CompiledPlugin.new(plugin_bytes("count_vowels"))
    a = compiled.instance
    b = compiled.instance
    compiled.close
    compiled.close
    a.call("count_vowels", "aaa")
    assert_equal 6, JSON.parse(a.call("count_vowels", "aaa"))["total"]
    assert_equal 3, JSON.parse(b.call("count_vowels", "aaa"))["total"], "instances have their own vars"
    assert_raises(Plinth::Error) { compiled.instance }
    a.close
    b.close
    err = assert_raises(Plinth::Error) { Plinth::CompiledPlugin.new("not wasm") }
    refute_empty err.message
  end

  def test_logs_drain
    Plinth.log_custom("info")
    assert_kind_of Array, Plinth.log_drain
  end
end
