// The shared C libraries' own translation unit (CMakeLists.txt, "The installed C libraries"):
// libmagma_wino_emu and libmagma_wino are the whole static kernel archives (mw_kernels_emu,
// mw_kernels_cuda) linked into one shared object with the C++ runtime inside; the linker's
// version script (c_library.map) exports the mw_* entry points of <magma_wino.h> and nothing
// else.  A shared library target needs one source of its own: this one, with the version check
// that the header and the build agree.
#include "magma_wino.h"

static_assert(MW_VERSION == MW_VERSION_MAJOR * 10000 + MW_VERSION_MINOR * 100 + MW_VERSION_PATCH,
              "MW_VERSION and its parts disagree");
