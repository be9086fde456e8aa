// Text from outside (ids, file names, messages a tracker or peer sends) and
// what may be shown of it on a terminal. A terminal acts on control
// characters (escape sequences can set its title, write the clipboard,
// clear or overwrite lines) and bidirectional and invisible characters make
// a name read as another ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf").
#ifndef GROUPSHARE_CORE_TEXT_H_
#define GROUPSHARE_CORE_TEXT_H_

#include <cstddef>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace groupshare {

// The code point at text[*at], moving *at past it; nullopt (and *at past
// one byte) for bytes that are not well-formed UTF-8 (overlong forms,
// surrogates and values past U+10FFFF included).
std::optional<char32_t> NextCodePoint(absl::string_view text, size_t* at);

// Control characters (C0, DEL, C1), bidirectional controls, and characters
// that show as nothing (zero-width spaces and joiners, word joiners,
// invisible operators, the byte order mark, line and paragraph separators).
bool IsUnsafeToShow(char32_t c);

// `text` with every unsafe character, and every byte that is not UTF-8,
// written as a visible escape (\e, \x07, \u{202e}): nothing in it acts on
// the terminal, and nothing hides.
std::string EscapeForTerminal(absl::string_view text);

// `text` when it has at most `max_bytes` bytes; else its first code points
// that fit, followed by "...": for echoing input whose length nothing bounds.
std::string Abbreviated(absl::string_view text, size_t max_bytes);

}  // namespace groupshare

#endif  // GROUPSHARE_CORE_TEXT_H_
