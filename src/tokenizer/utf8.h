// The UTF-8 helpers moved to core/utf8.h (the Jinja library uses them too); this header forwards.
#pragma once

#include "core/utf8.h"
