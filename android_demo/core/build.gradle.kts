// Pure Kotlin: the same sources `make android-core-test` compiles with kotlinc and runs with JUnit 4.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation("junit:junit:4.13.2")
}

tasks.test {
    // ./gradlew :core:test -Pgolden=a.json:b.json adds the golden parity with Python
    systemProperty("tfpipe.golden", (project.findProperty("golden") ?: "").toString())
    testLogging { showStandardStreams = true }
}
