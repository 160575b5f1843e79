/* VoiceVibe.app's executable, compiled by `voicevibe install-launcher` (launcher.py writes the #defines
 * above this comment: VOICEVIBE_PYTHON, the venv's Python; VOICEVIBE_DIALOG, osascript; VOICEVIBE_LOG_CAP,
 * the log's size in bytes past which it is moved aside at launch; VOICEVIBE_DIALOG_LINES, how much of the
 * log a dialog shows).
 *
 * Why Python runs as a child of this program (macOS): the privacy system (TCC) asks for the microphone on
 * behalf of the *responsible* process, the one LaunchServices started from the bundle: this program, with
 * its bundle's Info.plist and NSMicrophoneUsageDescription. A child started with posix_spawn inherits that
 * responsibility whatever it execs later. The venv's python on python.org's and Homebrew's framework builds
 * is CPython's pythonw stub (Mac/Tools/pythonw.c), which execs Python.app/Contents/MacOS/Python in the
 * framework; had this program execv()ed it, the bundle's own process would have become Python.app, whose
 * Info.plist has no microphone text: no prompt naming VoiceVibe, then exact zeros or a kill. So this
 * program stays alive as the app's process, passes on the signals that ask it to stop (TERM, INT, HUP),
 * and exits with Python's status: its exit code, or 128+N when signal N ended it (as a shell reports it);
 * 127 when Python cannot be started.
 *
 * Its output and the app's go to ~/Library/Logs/voicevibe/launcher.log, moved to launcher.log.1 at launch
 * once it is over VOICEVIBE_LOG_CAP bytes (so it never grows across shows); VOICEVIBE_LAUNCHER_LOG tells
 * the app where it is. One dialog per failure: the app shows the end of the log itself when it fails
 * (launcher.run_from_bundle); this program shows one only where the app cannot: Python could not be
 * started, or it died by a signal other than a stop request (a crash, SIGKILL).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PATH_SIZE 4096
#define TAIL_BYTES 4096
#define SCRIPT_SIZE (3 * PATH_SIZE + 2 * TAIL_BYTES)
#define EXIT_CANNOT_START 127  /* a shell's "command not found" */
#define EXIT_SIGNALLED 128     /* + N when signal N ended the app, as a shell reports it */

extern char **environ;

/* What asks the app to stop: logout and shutdown (launchd's SIGTERM), a terminal's Ctrl-C or hang-up. */
static const int STOP_SIGNALS[] = {SIGTERM, SIGINT, SIGHUP};
#define STOP_COUNT (sizeof STOP_SIGNALS / sizeof STOP_SIGNALS[0])

/* Python's pid while it runs. Read by the handler, which only runs inside sigsuspend (the signals are
 * blocked everywhere else), that is before Python has been reaped: its pid cannot have been reused. */
static volatile sig_atomic_t app_pid = 0;

static void forward(int sig) {
    if (app_pid > 0)
        kill((pid_t)app_pid, sig);
}

static void child_changed(int sig) {
    (void)sig;  /* only wakes sigsuspend; without a handler an inherited SIG_IGN would reap Python for us */
}

static int is_stop_signal(int sig) {
    for (size_t i = 0; i < STOP_COUNT; i++)
        if (STOP_SIGNALS[i] == sig)
            return 1;
    return 0;
}

static void make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    }
    mkdir(path, 0755);
}

static void stamp(const char *format, ...) {
    char when[32];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&now));
    printf("=== %s ", when);
    va_list args;
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    printf("\n");
    fflush(stdout);
}

/* One log over the cap becomes launcher.log.1 (replacing the one before): two files at most, whatever
 * the number of shows. Returns 1 when the log was moved. */
static int rotate(const char *log_path) {
    struct stat st;
    char previous[PATH_SIZE + 64];
    if (stat(log_path, &st) != 0 || st.st_size <= VOICEVIBE_LOG_CAP)
        return 0;
    snprintf(previous, sizeof previous, "%s.1", log_path);
    return rename(log_path, previous) == 0;
}

/* `in` made safe inside an AppleScript string literal (quotes and backslashes become ', control
 * characters but line breaks become spaces). */
static void quote_free(const char *in, char *out, size_t size) {
    size_t n = 0;
    for (; *in && n + 1 < size; in++) {
        char ch = *in;
        if (ch == '"' || ch == '\\')
            ch = '\'';
        else if ((unsigned char)ch < ' ' && ch != '\n')
            ch = ' ';
        out[n++] = ch;
    }
    out[n] = '\0';
}

/* The log's last VOICEVIBE_DIALOG_LINES lines, quote-free. */
static void log_tail(const char *log_path, char *out, size_t size) {
    char text[TAIL_BYTES + 1];
    out[0] = '\0';
    int fd = open(log_path, O_RDONLY);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    ssize_t n = end < 0 ? -1 : pread(fd, text, TAIL_BYTES, end > TAIL_BYTES ? end - TAIL_BYTES : 0);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && text[n - 1] == '\n')
        n--;
    text[n] = '\0';
    ssize_t from = n;
    for (int lines = 0; from > 0; from--)
        if (text[from - 1] == '\n' && ++lines == VOICEVIBE_DIALOG_LINES)
            break;
    quote_free(text + from, out, size);
}

/* posix_spawn `path`, its signal mask the one this program was started with; the app gets a process group
 * of its own, so that a terminal's Ctrl-C reaches it once, through forward(), not twice. Returns 0 or an
 * errno value. */
static int spawn(pid_t *pid, const char *path, char *const argv[], const sigset_t *mask, int own_group) {
    posix_spawnattr_t attr;
    int failed = posix_spawnattr_init(&attr);
    if (failed)
        return failed;
    short flags = POSIX_SPAWN_SETSIGMASK;
    if (own_group) {
        flags |= POSIX_SPAWN_SETPGROUP;
        posix_spawnattr_setpgroup(&attr, 0);
    }
    posix_spawnattr_setflags(&attr, flags);
    posix_spawnattr_setsigmask(&attr, mask);
    failed = posix_spawn(pid, path, NULL, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    return failed;
}

/* osascript's `display dialog` with `text` (already quote-free); waits until it is closed. */
static void show_dialog(const char *text, const sigset_t *mask) {
    static char script[SCRIPT_SIZE];
    snprintf(script, sizeof script, "display dialog \"%s\" with title \"VoiceVibe\" buttons {\"OK\"} "
             "default button 1 with icon stop", text);
    char *argv[] = {VOICEVIBE_DIALOG, "-e", script, NULL};
    pid_t pid;
    int failed = spawn(&pid, VOICEVIBE_DIALOG, argv, mask, 0);
    if (failed) {
        fprintf(stderr, "cannot show the error dialog: %s: %s\n", VOICEVIBE_DIALOG, strerror(failed));
        return;
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static void cannot_start(const char *why, const char *log_path, const sigset_t *mask) {
    char python[PATH_SIZE], log_shown[PATH_SIZE + 64];
    static char text[SCRIPT_SIZE / 2];
    fprintf(stderr, "cannot run %s: %s\n", VOICEVIBE_PYTHON, why);
    stamp("VoiceVibe exited with code %d", EXIT_CANNOT_START);
    quote_free(VOICEVIBE_PYTHON, python, sizeof python);
    quote_free(log_path, log_shown, sizeof log_shown);
    snprintf(text, sizeof text, "VoiceVibe cannot start: %s: %s.\n\nRun `make run` in the VoiceVibe folder, then "
             "`.venv/bin/voicevibe install-launcher` again.\n\nLog: %s", python, why, log_shown);
    show_dialog(text, mask);
}

/* Python died by a signal it could not answer (a crash, SIGKILL): it showed no dialog, so this one does. */
static void crashed(int sig, int code, const char *log_path, const sigset_t *mask) {
    char tail[TAIL_BYTES + 1], log_shown[PATH_SIZE + 64], name[128];
    static char text[SCRIPT_SIZE / 2];
    log_tail(log_path, tail, sizeof tail);
    quote_free(log_path, log_shown, sizeof log_shown);
    quote_free(strsignal(sig), name, sizeof name);
    snprintf(text, sizeof text, "VoiceVibe stopped with an error (signal %d, %s; code %d).\n\n%s\n\nFull log: %s",
             sig, name, code, tail, log_shown);
    show_dialog(text, mask);
}

/* Waits for Python, passing on stop signals meanwhile; 0 with its wait status, or -1 if lost. The stop
 * signals and SIGCHLD are blocked on entry and only let through inside sigsuspend, so none is missed
 * between waitpid and sigsuspend, and none forwarded to a pid already reaped. */
static int wait_for_app(pid_t pid, const sigset_t *started_with, int *status) {
    sigset_t waiting = *started_with;
    for (size_t i = 0; i < STOP_COUNT; i++)
        sigdelset(&waiting, STOP_SIGNALS[i]);
    sigdelset(&waiting, SIGCHLD);
    for (;;) {
        pid_t done = waitpid(pid, status, WNOHANG);
        if (done == pid)
            return 0;
        if (done < 0 && errno != EINTR) {
            fprintf(stderr, "lost track of Python (pid %d): %s\n", (int)pid, strerror(errno));
            return -1;
        }
        sigsuspend(&waiting);  /* returns (EINTR) once a handler ran: a stop signal, or Python changed state */
    }
}

int main(void) {
    char dir[PATH_SIZE], log_path[PATH_SIZE + 32];
    const char *home = getenv("HOME");
    snprintf(dir, sizeof dir, "%s/Library/Logs/voicevibe", home && *home ? home : "/tmp");
    make_dirs(dir);
    snprintf(log_path, sizeof log_path, "%s/launcher.log", dir);
    int rotated = rotate(log_path);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    stamp("starting VoiceVibe: %s -m voicevibe (launcher pid %d)", VOICEVIBE_PYTHON, (int)getpid());
    if (rotated)
        stamp("earlier launches are in %s.1", log_path);
    setenv("VOICEVIBE_LAUNCHER_LOG", log_path, 1);
    setenv("VOICEVIBE_DIALOG", VOICEVIBE_DIALOG, 1);

    /* Blocked before Python starts, so a stop signal that comes early waits for its pid instead of
     * killing this program and orphaning Python. */
    sigset_t held, started_with;
    sigemptyset(&held);
    for (size_t i = 0; i < STOP_COUNT; i++)
        sigaddset(&held, STOP_SIGNALS[i]);
    sigaddset(&held, SIGCHLD);
    sigprocmask(SIG_BLOCK, &held, &started_with);
    struct sigaction forwarding = {0}, woken = {0}, before;
    forwarding.sa_handler = forward;
    woken.sa_handler = child_changed;
    sigfillset(&forwarding.sa_mask);
    for (size_t i = 0; i < STOP_COUNT; i++) {
        sigaction(STOP_SIGNALS[i], NULL, &before);
        if (before.sa_handler != SIG_IGN)  /* ignored when started (nohup): stays ignored, for Python too */
            sigaction(STOP_SIGNALS[i], &forwarding, NULL);
    }
    sigaction(SIGCHLD, &woken, NULL);

    /* The venv's bin/python as it is, a symlink: pythonw finds the venv from the path it was started by
     * (_NSGetExecutablePath, the symlink kept), so it must not be resolved. Finder's -psn_ is dropped. */
    char *args[] = {VOICEVIBE_PYTHON, "-m", "voicevibe", NULL};
    pid_t pid;
    int failed = spawn(&pid, VOICEVIBE_PYTHON, args, &started_with, 1);
    if (failed) {
        cannot_start(strerror(failed), log_path, &started_with);
        return EXIT_CANNOT_START;
    }
    app_pid = pid;
    int status;
    int lost = wait_for_app(pid, &started_with, &status);
    app_pid = 0;
    if (lost) {
        stamp("VoiceVibe exited with code 1 (its status is unknown)");
        return 1;
    }
    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status), code = EXIT_SIGNALLED + sig;
        stamp("VoiceVibe stopped by signal %d (%s), exit code %d", sig, strsignal(sig), code);
        if (!is_stop_signal(sig))  /* a stop request is no failure, whether it came through here or not */
            crashed(sig, code, log_path, &started_with);
        return code;
    }
    int code = WEXITSTATUS(status);
    stamp("VoiceVibe exited with code %d", code);
    return code;  /* a failure's dialog was the app's own (run_from_bundle) */
}
