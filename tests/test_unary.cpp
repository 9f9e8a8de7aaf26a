#include "support.h"

using namespace ag;
