# tern - build, run, test, asan, fuzz, bench.
# Dependencies come from pkg-config; output goes to $(B) (build/ by default).

B        ?= build
CC       ?= cc
PKGS     := libevent libevent_openssl libevent_pthreads openssl libconfig hiredis
OPT      ?= -O2
SAN      ?=
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror $(OPT) -g $(SAN) -D_GNU_SOURCE -I.
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lbpf -lpthread
LDFLAGS  += $(SAN)

PROTO_SRC  := $(wildcard proto/*.c)
AUTH_SRC   := $(wildcard auth/*.c)
CONF_SRC   := $(wildcard conf/*.c)
# server/relay/offload.bpf.c is the kernel relay program (clang -target bpf)
SERVER_SRC := $(filter-out %.bpf.c,$(wildcard server/*.c server/*/*.c))
LIB_SRC    := $(PROTO_SRC) $(AUTH_SRC) $(CONF_SRC)
LIB_OBJ    := $(LIB_SRC:%.c=$(B)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(B)/%.o)
WWW_OBJ    := $(patsubst server/www/%.html,$(B)/server/www/%_html.o,$(wildcard server/www/*.html))
UNIT_SRC   := $(wildcard test/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:test/unit/%.c=$(B)/%)
BENCH_SRC  := $(wildcard test/bench/ternbench.c test/bench/bench_*.c)
TOOL_BIN   := $(B)/ternc $(B)/ternbench $(B)/ternecho $(B)/ternctl

.PHONY: all run test asan tsan soak fuzz bench clean deps test-deps install uninstall deb
all: $(B)/ternd $(UNIT_BIN) $(TOOL_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(B)/ternd: $(SERVER_OBJ) $(WWW_OBJ) $(B)/server/relay/offload_obj.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The kernel relay (issue 14): server/relay/offload.bpf.c, compiled for the
# BPF target against the uapi headers only (no vmlinux.h: the build host
# needs no kernel BTF), with -g for the BTF libbpf reads the maps from, and
# compiled into ternd as offload_obj[] the way the web pages are.
BPF_CLANG  ?= clang
BPF_CFLAGS := -O2 -g -Wall -Wextra -Werror -target bpf -I. \
              -I/usr/include/$(shell $(CC) -dumpmachine 2>/dev/null)
$(B)/server/relay/offload.bpf.o: server/relay/offload.bpf.c server/relay/offload_maps.h
	@mkdir -p $(dir $@)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(B)/server/relay/offload_obj.c: $(B)/server/relay/offload.bpf.o
	{ printf '#include <stddef.h>\nconst unsigned char offload_obj[] __attribute__((aligned(8))) = {\n'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '};\nconst size_t offload_obj_len = sizeof offload_obj;\n'; } > $@.tmp
	mv $@.tmp $@

.PRECIOUS: $(B)/server/relay/offload_obj.c
$(B)/server/relay/offload_obj.o: $(B)/server/relay/offload_obj.c
	$(CC) $(CFLAGS) -c $< -o $@

# The web console's pages are compiled in: each server/www/NAME.html becomes
# www_NAME_html[] (NUL-terminated) and www_NAME_html_len in a generated C
# file, with od and sed only (no xxd, no network); server/console_int.h
# declares the ones the routes serve.
$(B)/server/www/%_html.c: server/www/%.html
	@mkdir -p $(dir $@)
	{ printf '#include <stddef.h>\nconst unsigned char www_%s_html[] = {\n' '$*'; \
	  od -An -v -tx1 $< | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  printf '0x00 };\nconst size_t www_%s_html_len = sizeof www_%s_html - 1;\n' '$*' '$*'; } > $@.tmp
	mv $@.tmp $@

.PRECIOUS: $(B)/server/www/%_html.c
$(B)/server/www/%_html.o: $(B)/server/www/%_html.c
	$(CC) $(CFLAGS) -c $< -o $@

# The server below its transports, for unit tests that drive the TURN service
# and allocations with no client sockets and no Redis: cluster/ is replaced
# by a fake (test/unit/fake_cluster.c) that answers now, later or never.
CORE_OBJ   := $(patsubst %.c,$(B)/%.o,$(filter-out %.bpf.c,$(wildcard server/core/*.c server/relay/*.c server/stun/*.c server/turn/*.c)))
UNIT_EXTRA := $(CORE_OBJ) $(B)/test/unit/fake_cluster.o $(B)/test/unit/turn_harness.o

$(B)/test_%: $(B)/test/unit/test_%.o $(LIB_OBJ) $(UNIT_EXTRA)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# The console's token, cookie, rate-limit and parsing helpers are pure: their
# unit test links them alone.
$(B)/test_console: $(B)/server/console_auth.o

$(B)/ternc: $(B)/client/ternc.o $(B)/client/nat.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ternctl says the version ternd does: server/server.h's TERN_VERSION (that
# header is the composition root's, so the string comes in as a -D).
TERNCTL_VERSION := $(shell sed -n 's/^.define TERN_VERSION "\(.*\)"/\1/p' server/server.h)
$(B)/client/ternctl.o: CFLAGS += -DTERN_VERSION='"$(TERNCTL_VERSION)"'
$(B)/client/ternctl.o: server/server.h
$(B)/ternctl: $(B)/client/ternctl.o $(B)/client/ternctl_creds.o $(B)/client/ternctl_redis.o \
              $(B)/client/ternctl_icetest.o $(B)/client/turnc.o $(B)/client/nat.o \
              $(B)/server/core/json.o $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lm

$(B)/ternbench: $(BENCH_SRC:%.c=$(B)/%.o) $(LIB_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The kernel's ceiling for the benchmark: a bare recvmmsg/sendmmsg UDP echo.
$(B)/ternecho: $(B)/test/bench/echo.o
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

deps:
	scripts/install-deps

test-deps:
	scripts/install-deps --test

# Installs what is missing, builds, and runs ternd on the embedded default config.
# The default configuration, with the control socket under $(B)/ so that
# `$(B)/ternctl -s $(B)/ternd.sock status` works beside it.
run: deps
	$(MAKE) $(B)/ternd $(B)/ternc $(B)/ternctl
	{ cat conf/ternd.conf; echo 'control = { path = "$(abspath $(B))/ternd.sock"; };'; } > $(B)/ternd-run.conf
	$(B)/ternd -c $(B)/ternd-run.conf

# The whole suite: unit, integration and interop; ends with "N passed, N failed".
test: test-deps
	$(MAKE) all
	B=$(B) test/run-all

# The whole suite again under AddressSanitizer + UBSan.
asan: test-deps
	$(MAKE) B=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	B=build-asan SKIP_ASAN=1 SKIP_TSAN=1 FUZZ_SECONDS=0 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 test/run-all

# ternd under ThreadSanitizer with the integration tests that run several
# workers, Redis and the metrics endpoint (also a stage of make test).
tsan: test-deps
	TSAN_ONLY=1 test/run-all

# libFuzzer targets: decoder, stream framer, Binding service, TURN service
# (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 30
fuzz: test-deps
	B=$(B) FUZZ_SECONDS=$(FUZZ_SECONDS) test/fuzz/run

# Churn, faults and floods against one ternd for SOAK_SECONDS, then proof
# that it gave everything back (test/soak/soak.py; make test runs 90 s).
SOAK_SECONDS ?= 3600
soak: test-deps
	$(MAKE) all
	B=$(B) SOAK_SECONDS=$(SOAK_SECONDS) /usr/bin/python3 test/soak/soak.py

bench: test-deps
	$(MAKE) all
	B=$(B) test/bench/run

# Installation (GNU directory variables; DESTDIR honoured). The
# configuration is installed only where none exists: an operator's edits
# are never overwritten. The systemd unit names /usr/sbin, /usr/bin and
# /etc/tern (the Debian package's paths): the installed copy names the
# directories of this installation instead.
PREFIX     ?= /usr/local
prefix     ?= $(PREFIX)
bindir     ?= $(prefix)/bin
sbindir    ?= $(prefix)/sbin
mandir     ?= $(prefix)/share/man
sysconfdir ?= $(prefix)/etc
systemdsystemunitdir ?= $(prefix)/lib/systemd/system
INSTALL    ?= install
# ternctl and its manual page, once they exist (client/ternctl.c, client/ternctl.8)
TERNCTL    := $(if $(wildcard client/ternctl.c),$(B)/ternctl)
TERNCTL_8  := $(wildcard client/ternctl.8)

install: $(B)/ternd $(B)/ternc $(TERNCTL)
	$(INSTALL) -D -m 0755 $(B)/ternd $(DESTDIR)$(sbindir)/ternd
	$(INSTALL) -D -m 0755 $(B)/ternc $(DESTDIR)$(bindir)/ternc
	$(if $(TERNCTL),$(INSTALL) -D -m 0755 $(TERNCTL) $(DESTDIR)$(bindir)/ternctl)
	$(INSTALL) -D -m 0644 client/ternc.1 $(DESTDIR)$(mandir)/man1/ternc.1
	$(INSTALL) -D -m 0644 conf/ternd.conf.5 $(DESTDIR)$(mandir)/man5/ternd.conf.5
	$(INSTALL) -D -m 0644 scripts/ternd.8 $(DESTDIR)$(mandir)/man8/ternd.8
	$(if $(TERNCTL_8),$(INSTALL) -D -m 0644 $(TERNCTL_8) $(DESTDIR)$(mandir)/man8/ternctl.8)
	$(INSTALL) -d -m 0755 $(DESTDIR)$(systemdsystemunitdir)
	sed -e 's|/usr/sbin/ternd|$(sbindir)/ternd|g' -e 's|/usr/bin/ternctl|$(bindir)/ternctl|g' \
	    -e 's|/etc/tern/|$(sysconfdir)/tern/|g' scripts/ternd.service \
	    > $(DESTDIR)$(systemdsystemunitdir)/ternd.service
	chmod 0644 $(DESTDIR)$(systemdsystemunitdir)/ternd.service
	@if [ -e $(DESTDIR)$(sysconfdir)/tern/ternd.conf ]; then \
	    echo "install: keeping $(DESTDIR)$(sysconfdir)/tern/ternd.conf"; \
	else \
	    $(INSTALL) -D -m 0644 conf/ternd.conf $(DESTDIR)$(sysconfdir)/tern/ternd.conf; \
	fi

# Leaves the configuration, as a package manager would.
uninstall:
	rm -f $(DESTDIR)$(sbindir)/ternd $(DESTDIR)$(bindir)/ternc $(DESTDIR)$(bindir)/ternctl \
	    $(DESTDIR)$(mandir)/man1/ternc.1 $(DESTDIR)$(mandir)/man5/ternd.conf.5 \
	    $(DESTDIR)$(mandir)/man8/ternd.8 $(DESTDIR)$(mandir)/man8/ternctl.8 \
	    $(DESTDIR)$(systemdsystemunitdir)/ternd.service

# The Debian package (scripts/debian/, debhelper 13), built from a copy of
# this tree (tests, build directories and .git left out) with
# dpkg-buildpackage; the .deb lands in $(B)/deb/. Needs debhelper and the
# build dependencies of scripts/debian/control (scripts/install-deps --test).
VERSION := $(shell sed -n 's/^.define TERN_VERSION "\(.*\)"/\1/p' server/server.h)
deb:
	@v=$$(dpkg-parsechangelog -l scripts/debian/changelog -S Version) && \
	case "$$v" in $(VERSION)-*) ;; \
	*) echo "deb: scripts/debian/changelog is at $$v but ternd is $(VERSION): add an entry" >&2; exit 1;; esac
	rm -rf $(B)/deb
	mkdir -p $(B)/deb/tern-$(VERSION)
	tar -cf - --exclude-vcs --exclude='./build*' --exclude=./$(B) --exclude=./test --exclude=./.ci \
	    --exclude=./debian . | tar -xf - -C $(B)/deb/tern-$(VERSION)
	cp -a scripts/debian $(B)/deb/tern-$(VERSION)/debian
	cd $(B)/deb/tern-$(VERSION) && dpkg-buildpackage -b -us -uc -jauto
	rm -rf $(B)/deb/tern-$(VERSION)
	@ls $(B)/deb/*.deb

clean:
	rm -rf build build-asan build-tsan build-fuzz

-include $(shell find $(B) -name '*.d' 2>/dev/null)
