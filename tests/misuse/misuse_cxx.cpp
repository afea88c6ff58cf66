// misuse_cxx.cpp: the C++ half of the misuse suite (misuse.c says how a
// case reports): new[] released by delete, new by delete[], and blocks
// crossing between new/delete and malloc/free.  operator new and delete
// are libstdc++'s, which call malloc and free: the allocator under test
// sees what they pass on.
//
// Why the mismatches differ: an array of objects with a destructor is made
// with a cookie (its count) in the 8 bytes before the first object, so
// that delete[] knows how many to destroy.  delete on such an array frees
// a pointer 8 bytes into the block; delete[] on a single object reads a
// count from the 8 bytes before it (another block's bytes, or the
// allocator's header) and frees a pointer 8 bytes before the block.  With
// objects that need no destructor there is no cookie, and a mismatch
// reaches free with the right pointer: only an allocator that remembers
// which call made a block can see it.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <unistd.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wmismatched-new-delete"
#endif

static void say(const char *s)
{
    size_t n = std::strlen(s);
    if (write(STDOUT_FILENO, s, n) != (ssize_t)n)
        std::exit(3);
}

// The markers around the mistake (misuse.c's misuse_now); every mistake
// here is a call.
static const char *current;
static void misuse_now()
{
    say("MISUSE ");
    say(current);
    say(" call\n");
}

static void mistake_made()
{
    say("MADE\n");
}

template <typename T> static T *launder(T *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}


// An object of N bytes with a destructor of its own: arrays of it carry a
// cookie.  The destructor does nothing, so that delete[] with a count read
// from the wrong bytes goes straight to operator delete[] (the compiler,
// at -O2, drops the loop of empty calls) instead of crashing in the
// program's own loop: it is the allocator's answer that is measured.
template <size_t N> struct Object {
    unsigned char bytes[N];
    Object() { std::memset(bytes, 'o', N); }
    ~Object() {}
};

// The same work after the mistake as misuse.c's, through new and delete.
static void after_work()
{
    static const size_t sizes[] = {24, 48, 100, 200, 1000, 3000, 6000, 70000, 300000};
    const size_t nsizes = sizeof sizes / sizeof sizes[0];
    for (int round = 0; round < 4; round++) {
        char *blocks[120];
        for (size_t i = 0; i < 120; i++) {
            size_t s = sizes[(i * 7 + (size_t)round) % nsizes];
            blocks[i] = new char[s];
            std::memset(blocks[i], (int)i, s);
        }
        for (size_t i = 0; i < 120; i += 2)
            delete[] blocks[i];
        for (size_t i = 1; i < 120; i += 2) {
            Object<40> *o = new Object<40>[3];
            delete[] o;
            delete[] blocks[i];
        }
    }
    say("NOT CAUGHT\n");
}

template <size_t N> static void array_deleted_as_object()
{
    Object<N> *before = new Object<N>[1];
    Object<N> *a = new Object<N>[1];
    Object<N> *after = new Object<N>[1];
    misuse_now();
    delete launder(a);
    mistake_made();
    delete[] before;
    delete[] after;
    after_work();
}

template <size_t N> static void object_deleted_as_array()
{
    Object<N> *before = new Object<N>;
    Object<N> *o = new Object<N>;
    Object<N> *after = new Object<N>;
    misuse_now();
    delete[] launder(o);
    mistake_made();
    delete before;
    delete after;
    after_work();
}

template <size_t N> static void trivial_array_deleted_as_object()
{
    char *a = new char[N];
    std::memset(a, 't', N);
    misuse_now();
    delete launder(a);
    mistake_made();
    after_work();
}

static void new_then_free()
{
    Object<40> *o = new Object<40>;
    misuse_now();
    std::free(launder(o));
    mistake_made();
    after_work();
}

static void malloc_then_delete()
{
    char *p = static_cast<char *>(std::malloc(40));
    if (p == nullptr)
        std::exit(3);
    std::memset(p, 'm', 40);
    misuse_now();
    delete launder(p);
    mistake_made();
    after_work();
}

// No mistake: new and delete matched, and the same work after it.
static void control()
{
    Object<40> *o = new Object<40>;
    Object<40> *a = new Object<40>[5];
    misuse_now();
    mistake_made();
    delete o;
    delete[] a;
    after_work();
}

struct mistake {
    const char *name;
    void (*run)();
};

static const mistake table[] = {
    {"cxx-control", control},
    {"delete-array-as-object-small", array_deleted_as_object<8>},
    {"delete-array-as-object-medium", array_deleted_as_object<4096>},
    {"delete-array-as-object-large", array_deleted_as_object<256 * 1024>},
    {"delete-object-as-array-small", object_deleted_as_array<8>},
    {"delete-object-as-array-medium", object_deleted_as_array<4096>},
    {"delete-object-as-array-large", object_deleted_as_array<256 * 1024>},
    {"delete-trivial-array-as-object-small", trivial_array_deleted_as_object<8>},
    {"delete-trivial-array-as-object-medium", trivial_array_deleted_as_object<4096>},
    {"delete-trivial-array-as-object-large", trivial_array_deleted_as_object<256 * 1024>},
    {"new-then-free", new_then_free},
    {"malloc-then-delete", malloc_then_delete},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CASE | --list\n", argv[0]);
        return 64;
    }
    for (const mistake &m : table) {
        if (std::strcmp(argv[1], "--list") == 0)
            std::puts(m.name);
        else if (std::strcmp(argv[1], m.name) == 0) {
            current = m.name;
            m.run();
            return 0;
        }
    }
    if (std::strcmp(argv[1], "--list") == 0)
        return 0;
    std::fprintf(stderr, "%s: unknown case %s\n", argv[0], argv[1]);
    return 64;
}
