# make fresh-check: prove the install story on a fresh machine. Bootstraps a minimal Debian 12
# root (debootstrap --variant=minbase bookworm) under $(FRESH_DIR), clones this checkout's
# current commit into it and runs the README's two commands there in a chroot (make demo,
# then make check), printing the wall time of each step and the test summary lines.
# Root only; not part of make check (it downloads ~1 GB of packages and takes 30+ min).
#   FRESH_KEEP=1         keep the root afterwards (always unmounted)
#   FRESH_STEPS="demo"   stop after make demo (default: demo check); a step is make goals
#                        and variables joined by commas (fuzz,FUZZ_SECONDS=10) or a test
#                        script (tests/legacy/run)
#   FRESH_KEEP_GOING=1   run the remaining steps after a failing one
#   FRESH_MIRROR=URL     Debian mirror for debootstrap (default: the host's first bookworm one)
# The host's apt sources for bookworm, its apt.conf.d Acquire settings (proxy), its local
# CA certificates and npm configuration are carried into the root (scripts/fresh-check).
FRESH_DIR   ?= $(BUILD)/fresh
FRESH_KEEP  ?= 0
FRESH_STEPS ?= demo check
FRESH_KEEP_GOING ?= 0

.PHONY: fresh-check
fresh-check: install-deps
	FRESH_DIR="$(FRESH_DIR)" FRESH_KEEP="$(FRESH_KEEP)" FRESH_STEPS="$(FRESH_STEPS)" \
	  FRESH_KEEP_GOING="$(FRESH_KEEP_GOING)" \
	  scripts/fresh-check
