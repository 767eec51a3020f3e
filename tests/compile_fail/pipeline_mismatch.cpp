// SPDX-License-Identifier: MIT
// Must NOT compile: each case breaks one typing rule of distkit::make_pipeline, and the compiler's
// message must be the library's static_assert (checked by tests/pipeline.cmake).
#include <optional>
#include <string>

#include "distkit/pipeline.hpp"

void build() {
  auto src = distkit::source([]() -> std::optional<int> { return std::nullopt; });
#if defined(DISTKIT_CASE_WRONG_INPUT)
  // The middle stage wants a std::string; the source makes ints.
  auto p =
      distkit::make_pipeline(src, distkit::stage(distkit::parallel(), [](const std::string& s) { return s.size(); }),
                             distkit::sink(distkit::serial_in_order, [](std::size_t) {}));
#elif defined(DISTKIT_CASE_NO_SINK)
  // The last stage returns a value instead of consuming it.
  auto p = distkit::make_pipeline(src, distkit::stage(distkit::parallel(), [](int x) { return x + 1; }));
#elif defined(DISTKIT_CASE_SOURCE_NOT_OPTIONAL)
  auto p =
      distkit::make_pipeline(distkit::source([] { return 1; }), distkit::sink(distkit::serial_in_order, [](int) {}));
#endif
  p.run();
}
