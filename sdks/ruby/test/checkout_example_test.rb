# frozen_string_literal: true

require_relative "test_helper"
require "open3"
require "rbconfig"

# Runs examples/checkout/ruby/checkout.rb as a user would and checks what it prints.
class CheckoutExampleTest < Minitest::Test
  SCRIPT = File.join(REPO_ROOT, "examples/checkout/ruby/checkout.rb")

  def test_checkout_example
    lib = File.expand_path("../lib", __dir__)
    out, err, status = Open3.capture3(RbConfig.ruby, "-I", lib, SCRIPT, chdir: REPO_ROOT)
    assert status.success?, "checkout.rb failed: #{err}"
    assert_equal <<~OUT, out
      new customer: cart 120.00, discount 20.0%, pays 96.00
      returning customer: cart 120.00, discount 0.0%, pays 120.00
    OUT
  end
end
