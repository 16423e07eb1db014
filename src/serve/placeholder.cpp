// Removed once sim-serve sources exist.
namespace pals::serve {}
