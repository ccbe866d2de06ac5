# frozen_string_literal: true

require "tempfile"
require_relative "test_helper"

class AsyncTest < Minitest::Test
  include PlinthTestHelper

  # `run` hands its input to the host function `wait` and outputs what `wait` returns.
  WAT = <<~WAT
    (module
      (import "extism:host/user" "wait" (func $wait (param i64) (result i64)))
      (import "extism:host/env" "input_offset" (func $input_offset (result i64)))
      (import "extism:host/env" "length" (func $length (param i64) (result i64)))
      (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
      (memory 1)
      (func (export "run") (result i32) (local $h i64)
        (local.set $h (call $wait (call $input_offset)))
        (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))
  WAT

  # An async `wait` that answers "waited: <input>" from another thread after +delay+
  # seconds; "fail" fails it, "raise" raises in the block, "hold" hands the completion to
  # +held+ (a Queue) and leaves it unfinished.
  def waiter(delay: 0.05, held: nil, in_flight: nil)
    Plinth::AsyncHostFunction.new("wait") do |plugin, inputs, completion|
      text = plugin.read_string(inputs[0])
      raise ArgumentError, "no such key" if text == "raise"

      if text == "hold"
        held << completion
      else
        in_flight&.enter
        Thread.new do
          sleep delay
          in_flight&.leave
          text == "fail" ? completion.fail("the store refused") : completion.return_string("waited: #{text}")
        end
      end
    end
  end

  # Counts host functions waiting at once.
  class InFlight
    attr_reader :most

    def initialize
      @lock = Mutex.new
      @now = 0
      @most = 0
    end

    def enter
      @lock.synchronize { @most = [@most, @now += 1].max }
    end

    def leave
      @lock.synchronize { @now -= 1 }
    end
  end

  def test_an_async_host_function_completed_later_from_another_thread
    Plinth::Plugin.open(WAT, functions: [waiter]) do |p|
      call = p.call_async("run", "ada")
      assert_kind_of Plinth::AsyncCall, call
      assert_equal "waited: ada", call.value
      assert call.done?
      # With a block too; the block runs when the call is over.
      got = Queue.new
      p.call_async("run", "bob") { |out, err| got << [out, err] }
      assert_equal ["waited: bob", nil], got.pop
    end
  end

  def test_sync_calls_are_told_to_use_call_async
    Plinth::Plugin.open(WAT, functions: [waiter]) do |p|
      err = assert_raises(Plinth::Error) { p.call("run", "x") }
      assert_includes err.message, "call_async"
    end
  end

  def test_completion_return_with_values
    echo = Plinth::AsyncHostFunction.new("wait") do |_plugin, inputs, completion|
      Thread.new { completion.return(inputs[0]) }
    end
    Plinth::Plugin.open(WAT, functions: [echo]) { |p| assert_equal "same", p.call_async("run", "same").value }
  end

  def test_many_plugins_at_once
    compiled = Plinth::CompiledPlugin.new(WAT, functions: [waiter(in_flight: (in_flight = InFlight.new))])
    plugins = Array.new(30) { compiled.instance }
    calls = plugins.each_with_index.map { |p, i| p.call_async("run", "call #{i}") }
    calls.each_with_index { |c, i| assert_equal "waited: call #{i}", c.value(20) }
    # The host functions waited together, not one worker thread each.
    assert_operator in_flight.most, :>, 8
  ensure
    plugins&.each(&:close)
  end

  def test_calls_on_one_plugin_queue_in_order
    Plinth::Plugin.open(WAT, functions: [waiter(delay: 0.01)]) do |p|
      order = Queue.new
      calls = Array.new(10) { |i| p.call_async("run", "q#{i}") { |out, _| order << out } }
      # A synchronous call does not wait behind them.
      err = assert_raises(Plinth::Error) { p.call("run", "") }
      assert_equal :busy, err.kind
      calls.each_with_index { |c, i| assert_equal "waited: q#{i}", c.value(20) }
      assert_equal Array.new(10) { |i| "waited: q#{i}" }, Array.new(10) { order.pop }
    end
  end

  def test_errors_from_async_host_functions_reach_the_caller
    Plinth::Plugin.open(WAT, functions: [waiter]) do |p|
      err = assert_raises(Plinth::Error) { p.call_async("run", "fail").value }
      assert_equal :host_function, err.kind
      assert_includes err.message, "the store refused"
      err = assert_raises(Plinth::Error) { p.call_async("run", "raise").value }
      assert_equal :host_function, err.kind
      assert_includes err.message, "ArgumentError: no such key"
      got = Queue.new
      p.call_async("run", "fail") { |out, e| got << [out, e] }
      out, e = got.pop
      assert_nil out
      assert_equal :host_function, e.kind
      assert_equal "waited: after", p.call_async("run", "after").value
    end
  end

  def test_a_timeout_fires_while_a_host_function_waits
    held = Queue.new
    Tempfile.create(["async", ".wat"]) do |f|
      f.write(WAT)
      f.flush
      Plinth::Plugin.open({ wasm: [{ path: f.path }], timeout_ms: 200 }, functions: [waiter(held: held)]) do |p|
        call = p.call_async("run", "hold")
        completion = held.pop
        err = assert_raises(Plinth::Error) { call.value(20) }
        assert_equal :timeout, err.kind
        refute completion.waiting?
        refute completion.return_string("late"), "a late finish is a no-op"
        assert_raises(Plinth::Error) { completion.return_string("twice") }
      end
    end
  end

  def test_cancel_while_a_host_function_waits
    held = Queue.new
    Plinth::Plugin.open(WAT, functions: [waiter(held: held)]) do |p|
      call = p.call_async("run", "hold")
      completion = held.pop
      assert completion.waiting?
      assert p.cancel_handle.cancel
      err = assert_raises(Plinth::Error) { call.value(20) }
      assert_equal :cancelled, err.kind
      refute completion.fail("late")
      # The cancel was for that call only.
      assert_equal "waited: next", p.call_async("run", "next").value(20)
    end
  end

  def test_call_async_on_a_closed_plugin_raises
    p = Plinth::Plugin.new(WAT, functions: [waiter])
    call = p.call_async("run", "last")
    p.close
    assert_equal "waited: last", call.value(20), "calls made before close finish"
    assert_raises(Plinth::Error) { p.call_async("run", "x") }
  end

  def test_missing_function
    Plinth::Plugin.open(WAT, functions: [waiter]) do |p|
      err = assert_raises(Plinth::Error) { p.call_async("nope", "").value }
      assert_equal :function_not_found, err.kind
    end
  end
end
