# The two commands the README gives, and a few more. Each installs what is
# missing (scripts/install-deps.sh), configures with CMake, builds and runs.
#   make run     build and run the main program, gmud-server (options: make run ARGS="--app clock")
#   make test    build with gcc, and with clang + ASan/UBSan + libFuzzer; run every test in both
#   make install install the library, headers and programs (PREFIX=/usr/local, DESTDIR)
#   make bench   build optimised and run the benchmarks
#   make fuzz    run every fuzz target for FUZZ_SECONDS (default 600) each

JOBS ?= 2
FUZZ_SECONDS ?= 600
CTEST = ctest --output-on-failure --no-tests=error

.PHONY: run test deps build install test-gcc test-clang bench fuzz clean

deps:
	@scripts/install-deps.sh

build: deps
	cmake -S . -B build -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DGMUD_BENCH=OFF >/dev/null
	cmake --build build -j$(JOBS) --target gmud-server gmud-client gmud-codec gmud-keygen

ARGS ?=
PREFIX ?= /usr/local

# The library (shared and static), headers, pkg-config file and programs
# under $(PREFIX); DESTDIR=/some/root stages them there instead.
install: build
	cmake --build build -j$(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build --prefix $(PREFIX)

run: build
	./build/programs/gmud-server $(ARGS)

test-gcc: deps
	cmake -S . -B build-test-gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ >/dev/null
	cmake --build build-test-gcc -j$(JOBS)
	cd build-test-gcc && $(CTEST)

test-clang: deps
	cmake -S . -B build-test-clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DGMUD_SANITIZE=ON -DGMUD_FUZZ=ON -DGMUD_FUZZ_SECONDS=5 >/dev/null
	cmake --build build-test-clang -j$(JOBS)
	cd build-test-clang && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(CTEST)

test: test-gcc test-clang

bench:
	@scripts/install-deps.sh
	cmake -S . -B build-bench -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build build-bench -j$(JOBS) --target bench

fuzz: deps
	cmake -S . -B build-test-clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DGMUD_SANITIZE=ON -DGMUD_FUZZ=ON \
	  -DGMUD_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build build-test-clang -j$(JOBS)
	cd build-test-clang && $(CTEST) -R '^fuzz_'

clean:
	rm -rf build build-test-gcc build-test-clang build-bench
