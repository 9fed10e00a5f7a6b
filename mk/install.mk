# make install / make uninstall. Included from the top Makefile (after the build rules).
#
#   make install                         # PREFIX=/usr/local, as root
#   make install PREFIX=/usr DESTDIR=/tmp/pkg   # staged, for a package
#   make uninstall                       # same variables as the install
#
# What goes where (every directory can be overridden on the command line):
#   $(SBINDIR)/espstmd                   PREFIX/sbin                       0755
#   $(BINDIR)/espstm, espstm-bridge      PREFIX/bin                        0755
#   $(UNITDIR)/espstmd.service           see below                         0644
#   $(UNITDIR)/espstm-bridge.service, espstm-bridge@.service   see below   0644
#   $(UDEVRULESDIR)/99-espstm.rules      see below                         0644
#   $(SYSCONFDIR)/espstm/espstm.conf     /etc (not under PREFIX)           0644
#   $(SYSCONFDIR)/espstm/bridge.conf     /etc (conf/espstm-bridge.conf)    0644
#   $(MANDIR)/manN/*.N                   PREFIX/share/man                  0644
#
# UNITDIR / UDEVRULESDIR: with PREFIX=/usr (a distribution package) the distribution's own
# directories, from pkg-config (systemd: systemdsystemunitdir, udev: udevdir); otherwise
# PREFIX/lib/systemd/system and PREFIX/lib/udev/rules.d. For the default PREFIX=/usr/local
# those are /usr/local/lib/systemd/system and /usr/local/lib/udev/rules.d, which systemd
# and udev read (systemd.unit(5) "System Unit Search Path", udev(7) "Rules Files"), so /etc
# stays the administrator's: overrides go in a drop-in (systemctl edit espstmd), and
# uninstall never touches /etc/systemd. For any other PREFIX, which systemd and udev do not
# search, pass UNITDIR=/etc/systemd/system UDEVRULESDIR=/etc/udev/rules.d.
#
# In the unit's Exec*= lines, /usr/local/sbin/espstmd and /etc/espstm/espstm.conf become
# $(SBINDIR)/espstmd and $(SYSCONFDIR)/espstm/espstm.conf; in the espstm-bridge units',
# /usr/local/bin/espstm-bridge and /etc/espstm/bridge (bridge.conf, bridge-%i.conf) become
# $(BINDIR)/espstm-bridge and $(SYSCONFDIR)/espstm/bridge.
#
# A configuration file is never overwritten: if $(SYSCONFDIR)/espstm/espstm.conf exists and
# differs from conf/espstm.conf, the new example is installed beside it as espstm.conf.new
# (compare and merge by hand). uninstall removes espstm.conf only if it is still the shipped
# example, and always removes espstm.conf.new. The same for bridge.conf (the example
# conf/espstm-bridge.conf; install enables no service, so its example target is inert).
#
# Man pages: every man/*.1, man/*.5 and man/*.8 that exists.
#
# install does not run systemctl or udevadm; it prints what to run when DESTDIR is empty.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
INSTALL    ?= install

ifeq ($(PREFIX),/usr)
UNITDIR      ?= $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/usr/lib/systemd/system)
UDEVRULESDIR ?= $(or $(addsuffix /rules.d,$(shell pkg-config --variable=udevdir udev 2>/dev/null)),/usr/lib/udev/rules.d)
else
UNITDIR      ?= $(PREFIX)/lib/systemd/system
UDEVRULESDIR ?= $(PREFIX)/lib/udev/rules.d
endif

INSTALL_MAN  := $(sort $(wildcard man/*.1 man/*.5 man/*.8))
# The unit names espstmd and its configuration by their PREFIX=/usr/local paths;
# install replaces them in the Exec*= lines with the installed ones.
UNIT_EXEC_SRC := ExecStart=/usr/local/sbin/espstmd -c /etc/espstm/espstm.conf
UNIT_SED       = -e '/^Exec/s|/usr/local/sbin/espstmd|$(SBINDIR)/espstmd|g' \
                 -e '/^Exec/s|/etc/espstm/espstm\.conf|$(SYSCONFDIR)/espstm/espstm.conf|g'
CONF_DST       = $(DESTDIR)$(SYSCONFDIR)/espstm/espstm.conf
# The same for the espstm-bridge units (both name these two paths on their ExecStart= line).
BRIDGE_UNITS   := espstm-bridge.service espstm-bridge@.service
BRIDGE_SED      = -e '/^Exec/s|/usr/local/bin/espstm-bridge|$(BINDIR)/espstm-bridge|g' \
                  -e '/^Exec/s|/etc/espstm/bridge|$(SYSCONFDIR)/espstm/bridge|g'
BCONF_DST      = $(DESTDIR)$(SYSCONFDIR)/espstm/bridge.conf

# $(call install_conf,SRC,DST): DST from SRC unless DST exists and differs (then DST.new).
define install_conf
@if [ ! -e "$(2)" ]; then \
  echo "$(INSTALL) -D -m 0644 $(1) $(2)"; \
  $(INSTALL) -D -m 0644 $(1) "$(2)"; \
elif cmp -s $(1) "$(2)"; then \
  echo "install: $(2) is already the shipped example"; \
else \
  echo "$(INSTALL) -D -m 0644 $(1) $(2).new"; \
  $(INSTALL) -D -m 0644 $(1) "$(2).new"; \
  echo "install: kept your $(2); the new example is $(2).new"; \
fi
endef
# $(call uninstall_conf,SRC,DST): DST.new, and DST if it is still SRC.
define uninstall_conf
rm -f "$(2).new"
@if [ -e "$(2)" ]; then \
  if cmp -s $(1) "$(2)"; then \
    echo "rm -f $(2)"; rm -f "$(2)"; \
  else \
    echo "uninstall: kept $(2) (changed from the shipped example)"; \
  fi; \
fi
endef

.PHONY: install uninstall

install: $(BUILD)/espstmd $(BUILD)/espstm $(BUILD)/espstm-bridge
	$(INSTALL) -D -m 0755 $(BUILD)/espstmd "$(DESTDIR)$(SBINDIR)/espstmd"
	$(INSTALL) -D -m 0755 $(BUILD)/espstm "$(DESTDIR)$(BINDIR)/espstm"
	$(INSTALL) -D -m 0755 $(BUILD)/espstm-bridge "$(DESTDIR)$(BINDIR)/espstm-bridge"
	@grep -qxF '$(UNIT_EXEC_SRC)' systemd/espstmd.service || \
	  { echo "install: systemd/espstmd.service has no line '$(UNIT_EXEC_SRC)' (mk/install.mk rewrites it)" >&2; exit 1; }
	$(INSTALL) -D -m 0644 systemd/espstmd.service "$(DESTDIR)$(UNITDIR)/espstmd.service"
	sed -i $(UNIT_SED) "$(DESTDIR)$(UNITDIR)/espstmd.service"
	$(INSTALL) -D -m 0644 systemd/99-espstm.rules "$(DESTDIR)$(UDEVRULESDIR)/99-espstm.rules"
	@set -e; for u in $(BRIDGE_UNITS); do \
	  grep -q '^ExecStart=/usr/local/bin/espstm-bridge --config /etc/espstm/bridge' systemd/$$u || \
	    { echo "install: systemd/$$u has no ExecStart=/usr/local/bin/espstm-bridge --config /etc/espstm/bridge... (mk/install.mk rewrites it)" >&2; exit 1; }; \
	  echo "$(INSTALL) -D -m 0644 systemd/$$u $(DESTDIR)$(UNITDIR)/$$u"; \
	  $(INSTALL) -D -m 0644 systemd/$$u "$(DESTDIR)$(UNITDIR)/$$u"; \
	  sed -i $(BRIDGE_SED) "$(DESTDIR)$(UNITDIR)/$$u"; \
	done
	$(call install_conf,conf/espstm.conf,$(CONF_DST))
	$(call install_conf,conf/espstm-bridge.conf,$(BCONF_DST))
	@set -e; for m in $(INSTALL_MAN); do \
	  s=$${m##*.}; \
	  echo "$(INSTALL) -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
	  $(INSTALL) -D -m 0644 "$$m" "$(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
	done
	@if [ -z "$(DESTDIR)" ]; then \
	  echo "install: done. Edit $(SYSCONFDIR)/espstm/espstm.conf, then:"; \
	  echo "  systemctl daemon-reload && udevadm control --reload"; \
	  echo "  systemctl enable --now espstmd"; \
	  echo "install: for this machine as a bridge: edit $(SYSCONFDIR)/espstm/bridge.conf, then"; \
	  echo "  systemctl enable --now espstm-bridge"; \
	fi

uninstall:
	rm -f "$(DESTDIR)$(SBINDIR)/espstmd" "$(DESTDIR)$(BINDIR)/espstm" "$(DESTDIR)$(BINDIR)/espstm-bridge"
	rm -f "$(DESTDIR)$(UNITDIR)/espstmd.service" "$(DESTDIR)$(UDEVRULESDIR)/99-espstm.rules"
	rm -f $(addprefix "$(DESTDIR)$(UNITDIR)/,$(addsuffix ",$(BRIDGE_UNITS)))
	@set -e; for m in $(INSTALL_MAN); do \
	  s=$${m##*.}; \
	  echo "rm -f $(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
	  rm -f "$(DESTDIR)$(MANDIR)/man$$s/$${m##*/}"; \
	done
	$(call uninstall_conf,conf/espstm.conf,$(CONF_DST))
	$(call uninstall_conf,conf/espstm-bridge.conf,$(BCONF_DST))
	@rmdir "$(DESTDIR)$(SYSCONFDIR)/espstm" 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ]; then \
	  echo "uninstall: if espstmd was enabled: systemctl disable --now espstmd; systemctl daemon-reload"; \
	  echo "  (and espstm-bridge, espstm-bridge@NAME if enabled)"; \
	fi
