// Pure Kotlin: the same sources `make android-core-test` compiles with kotlinc and runs with JUnit 4.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("org.jetbrains.kotlin.jvm")
}

// Java 17 bytecode, whatever JDK runs Gradle (no toolchain download)
java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // ./gradlew :core:test -Pgolden=a.json:b.json adds the golden parity with Python
    systemProperty("tfpipe.golden", (project.findProperty("golden") ?: "").toString())
    systemProperty("tfpipe.bundles", (project.findProperty("bundles") ?: "").toString())
    testLogging { showStandardStreams = true }
}
