# frozen_string_literal: true

require_relative "test_helper"

class ChurnTest < Minitest::Test
  include PlinthTestHelper

  ITERATIONS = Integer(ENV.fetch("PLINTH_CHURN", "1000"))
  # RSS growth allowed over the loop (KiB).
  LIMIT_KIB = 6 * 1024

  def cycle(compiled, host_fn_plugin)
    compiled.instance do |p|
      raise "bad output" unless JSON.parse(p.call("count_vowels", "churn"))["count"] == 1
    end
    host_fn_plugin.call("call_greet", "x")
  end

  def test_create_call_close_loop_does_not_grow_rss
    compiled = Plinth::CompiledPlugin.new(plugin_bytes("count_vowels"))
    greet = Plinth::HostFunction.new("greet") { |cp, inputs| cp.write_string(cp.read_string(inputs[0])) }
    hp = Plinth::Plugin.new(plugin_bytes("host_greet"), functions: [greet])
    200.times { cycle(compiled, hp) } # warm up allocators and caches
    GC.start
    before = rss_kib
    ITERATIONS.times { cycle(compiled, hp) }
    GC.start
    after = rss_kib
    growth = after - before
    puts "\nchurn: #{ITERATIONS} instances, RSS #{before} KiB -> #{after} KiB (#{growth} KiB)" if ENV["VERBOSE"]
    assert_operator growth, :<, LIMIT_KIB, "RSS grew by #{growth} KiB over #{ITERATIONS} instances"
  ensure
    hp&.close
    compiled&.close
  end
end
