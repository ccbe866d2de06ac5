# frozen_string_literal: true

require_relative "test_helper"

class LimitsTest < Minitest::Test
  include PlinthTestHelper

  def test_timeout_stops_an_infinite_loop
    Plinth::Plugin.open({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 100 }) do |p|
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      err = assert_raises(Plinth::Error) { p.call("spin") }
      elapsed = Process.clock_gettime(Process::CLOCK_MONOTONIC) - started
      assert_includes err.message, "timed out"
      assert_equal(-1, err.code)
      assert_operator elapsed, :<, 5, "stopped near the 100 ms limit"
      assert_equal "", p.call("ok"), "the plug-in works after a timeout"
    end
  end

  def test_memory_limit_stops_growth
    Plinth::Plugin.open({ wasm: [{ data: HOSTILE_WAT }], memory: { max_pages: 4 } }) do |p|
      err = assert_raises(Plinth::Error) { p.call("grow") }
      assert_includes err.message, "max_pages"
      assert_equal "", p.call("ok"), "the plug-in works after running out of memory"
    end
  end

  def test_memory_limit_covers_input
    Plinth::Plugin.open({ wasm: [{ path: plugin_path("count_vowels") }], memory: { max_pages: 40 } }) do |p|
      assert_raises(Plinth::Error) { p.call("count_vowels", "a" * (4 << 20)) }
      assert_equal 1, JSON.parse(p.call("count_vowels", "a"))["count"]
    end
  end

  def test_cancel_from_another_thread
    Plinth::Plugin.open(HOSTILE_WAT) do |p|
      handle = p.cancel_handle
      done = false
      canceller = Thread.new do
        # Keep cancelling until the call has ended: a cancel may land before the call starts.
        until done
          sleep 0.05
          handle.cancel
        end
      end
      started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
      err = assert_raises(Plinth::Error) { p.call("spin") }
      done = true
      canceller.join
      assert_includes err.message, "cancelled"
      assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :<, 5
      assert_equal "", p.call("ok")
    end
  end

  def test_other_threads_run_during_a_call
    Plinth::Plugin.open({ wasm: [{ data: HOSTILE_WAT }], timeout_ms: 300 }) do |p|
      ticks = 0
      ticker = Thread.new { loop { ticks += 1; sleep 0.01 } } # rubocop:disable Style/Semicolon
      assert_raises(Plinth::Error) { p.call("spin") }
      ticker.kill
      assert_operator ticks, :>, 5, "the GVL is released while the plug-in runs"
    end
  end

  def test_cancel_handle_after_close
    p = Plinth::Plugin.new(HOSTILE_WAT)
    handle = p.cancel_handle
    p.close
    refute handle.cancel
  end

  def test_calls_from_many_threads_take_turns
    Plinth::Plugin.open(plugin_bytes("count_vowels")) do |p|
      threads = 4.times.map { Thread.new { 25.times { p.call("count_vowels", "ae") } } }
      threads.each(&:join)
      assert_equal 202, JSON.parse(p.call("count_vowels", "ae"))["total"]
    end
  end
end
