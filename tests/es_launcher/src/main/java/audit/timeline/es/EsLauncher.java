package audit.timeline.es;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.Plugin;

/**
 * Starts a real single-node Elasticsearch 7.17 from the jars on the classpath, for tests only.
 *
 * <p>Usage: {@code EsLauncher <path.home> <path.data> <http.port> [key=value ...]}. Runs until
 * the JVM is told to stop (SIGTERM/SIGINT); a shutdown hook then closes the node cleanly. With
 * {@code -Des.launcher.exitOnStdinEof=true} it also stops when its stdin closes, so a test run
 * that dies without cleaning up does not leave a node behind.
 */
public final class EsLauncher {

    /** Plugins normally loaded from modules/; taken from the classpath instead. */
    private static final List<String> PLUGIN_CLASSES = List.of(
            "org.elasticsearch.transport.Netty4Plugin", // HTTP + transport
            "org.elasticsearch.reindex.ReindexPlugin", // _reindex, _delete_by_query
            "org.elasticsearch.index.mapper.MapperExtrasPlugin"); // scaled_float, rank_feature, ...

    /** Node with classpath plugins (the constructor taking them is protected). */
    static final class TestNode extends Node {
        TestNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: EsLauncher <path.home> <path.data> <http.port> [key=value ...]");
            System.exit(2);
        }
        Settings.Builder builder = Settings.builder()
                .put("path.home", args[0])
                .put("path.data", args[1])
                .put("path.logs", args[0] + "/logs")
                .put("http.port", args[2])
                .put("cluster.name", "audit-timeline-test")
                .put("node.name", "es-test")
                .put("discovery.type", "single-node")
                .put("network.host", "127.0.0.1")
                .put("transport.port", "0")
                .put("node.portsfile", true)
                .put("cluster.routing.allocation.disk.threshold_enabled", false)
                .put("logger.level", "INFO");
        for (int i = 3; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            if (kv.length != 2) {
                throw new IllegalArgumentException("expected key=value, got: " + args[i]);
            }
            builder.put(kv[0], kv[1]);
        }
        Settings settings = builder.build();
        LogConfigurator.configureWithoutConfig(settings); // log4j's default console appender
        Files.createDirectories(Path.of(args[0], "logs")); // node.portsfile writes there

        Environment env = InternalSettingsPreparer.prepareEnvironment(
                settings, Collections.emptyMap(), null, () -> "es-test");
        Node node = new TestNode(env, loadPlugins()).start();

        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "es-launcher-shutdown"));
        if (Boolean.getBoolean("es.launcher.exitOnStdinEof")) {
            Thread watcher = new Thread(EsLauncher::exitOnStdinEof, "es-launcher-stdin-watch");
            watcher.setDaemon(true);
            watcher.start();
        }
        System.out.println("EsLauncher: node started, http.port=" + args[2]);
        stopped.await(); // ES threads are daemons: keep the JVM alive
    }

    private static void exitOnStdinEof() {
        try {
            while (System.in.read() != -1) {
                // discard input; only EOF matters
            }
        } catch (IOException ignored) {
            // treat a broken stdin like EOF
        }
        System.exit(0); // runs the shutdown hook
    }

    /** Fails hard: without Netty4Plugin the node would start silently without HTTP. */
    private static List<Class<? extends Plugin>> loadPlugins() throws ClassNotFoundException {
        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGIN_CLASSES) {
            plugins.add(Class.forName(name).asSubclass(Plugin.class));
        }
        return plugins;
    }
}
